"""Access log lines, /metrics access rules and label bounds, trusted proxy hops."""

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from app import create_app
from tests.conftest import AUTH, MASTER_KEY, chat_body


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_lines() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("app.access")
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text, _, value = line[len(name) + 1:].rpartition("} ")
        found = dict(part.split("=", 1) for part in label_text.split(","))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


def test_access_line_has_ids_and_numbers_never_the_key(client: FlaskClient,
                                                       access_lines: list[Any]) -> None:
    with client.post("/v1/chat/completions", json=chat_body(), headers={
            **AUTH, "X-Request-ID": "log-1"}) as resp:
        assert resp.status_code == 200
    line = next(r for r in access_lines if getattr(r, "request_id", None) == "log-1")
    assert line.status == 200 and line.model == "mock-fast" and line.key_id == "master"
    assert line.deployment == "mock-fast#0" and line.completion_tokens == 5
    assert line.latency_ms >= 0 and line.client_ip == "127.0.0.1"
    assert MASTER_KEY not in str(line.__dict__) and "Hello there" not in str(line.__dict__)


def test_stream_access_line_written_after_the_stream(client: FlaskClient,
                                                     access_lines: list[Any]) -> None:
    with client.post("/v1/chat/completions", json=chat_body(stream=True), headers={
            **AUTH, "X-Request-ID": "log-2"}) as resp:
        assert resp.data.endswith(b"data: [DONE]\n\n")
    line = next(r for r in access_lines if getattr(r, "request_id", None) == "log-2")
    assert line.stream is True and line.ttft_ms >= 0 and line.completion_tokens == 5


def test_error_access_line_has_the_error_code(client: FlaskClient,
                                              access_lines: list[Any]) -> None:
    with client.get("/v1/models", headers={"X-Request-ID": "log-3"}):
        pass
    line = next(r for r in access_lines if getattr(r, "request_id", None) == "log-3")
    assert line.status == 401 and line.error_code == "missing_api_key"


def test_metrics_count_requests_with_bounded_labels(client: FlaskClient) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    for name in ("unknown-a", "unknown-b", "unknown-c"):
        with client.post("/v1/chat/completions", json=chat_body(name), headers=AUTH):
            pass
    with client.post("/v1/chat/completions", json=chat_body(), headers=AUTH):
        pass
    after = client.get("/metrics").get_data(as_text=True)
    route = "/v1/chat/completions"
    assert metric_value(after, "neuroroute_requests_total", route=route, model="other",
                        status="404") - metric_value(before, "neuroroute_requests_total",
                                                     route=route, model="other",
                                                     status="404") == 3
    assert metric_value(after, "neuroroute_requests_total", route=route, model="mock-fast",
                        deployment="mock-fast#0", status="200") >= 1
    assert "unknown-a" not in after
    assert metric_value(after, "neuroroute_tokens_total", model="mock-fast",
                        direction="completion") >= 5


def test_metrics_loopback_only_without_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200
    resp = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "permission_denied"


def test_metrics_token(make_settings: Any) -> None:
    client = create_app(make_settings(NEUROROUTE_METRICS_TOKEN="scrape-secret")).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"},
                    environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert ok.status_code == 200 and b"neuroroute_requests_total" in ok.data


@pytest.mark.parametrize(("hops", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_trusted_proxy_hops(make_settings: Any, access_lines: list[Any], hops: int,
                            expected: str) -> None:
    client = create_app(make_settings(NEUROROUTE_TRUSTED_PROXY_HOPS=str(hops))).test_client()
    # Only the last hop is trusted: the client-supplied first entry is ignored.
    with client.get("/health/live", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9",
                                             "X-Request-ID": f"hop-{hops}"}):
        pass
    line = next(r for r in access_lines if getattr(r, "request_id", None) == f"hop-{hops}")
    assert line.client_ip == expected


def test_cache_refusal_and_dependency_series(make_settings: Any) -> None:
    models = [{"name": "c", "provider": "mock", "model": "c", "cache": {}}]
    client = create_app(make_settings(models, NEUROROUTE_DEFAULT_RPM="1")).test_client()
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(2):
        with client.post("/v1/chat/completions", json=chat_body("c"), headers=AUTH):
            pass
    after = client.get("/metrics").get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("neuroroute_cache_requests_total", result="miss") == 1
    assert delta("neuroroute_refused_total", reason="rate_limit") == 1
    assert metric_value(after, "neuroroute_dependency_up", dependency="database") == 1
    assert metric_value(after, "neuroroute_deployment_cooldown", deployment="c#0") == 0
