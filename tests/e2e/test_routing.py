"""Fault matrix end to end: real Gunicorn, real mock upstreams, the official openai SDK.

Each case is its own group of two deployments: the faulty one is cheaper, so the ``cheapest``
strategy always tries it first, and the healthy one must rescue the request. The client
(max_retries=0) must see one clean success and ``x-neuroroute-attempts`` > 1.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.integration.test_cooldown_redis import REDIS_URL, redis_client_or_skip
from tests.procs import MASTER_KEY, Proc, free_port, running, sdk_client, start_gateway

pytestmark = pytest.mark.e2e
MESSAGES: Any = [{"role": "user", "content": "hello"}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
# Workers that resolved a host name keep gevent's resolver thread and wait out the graceful
# timeout at shutdown; these tests have nothing in flight by then.
QUICK_STOP = {"NEUROROUTE_GRACEFUL_TIMEOUT": "2"}

# case -> (fields of the faulty deployment, which modes apply)
FAULTS: dict[str, tuple[dict[str, Any], tuple[bool, ...]]] = {
    "http500": ({"headers": {"x-mock-status": "500"}}, (False, True)),
    "http429": ({"headers": {"x-mock-status": "429", "x-mock-retry-after": "1"}},
                (False, True)),
    "refused": ({"api_base": "REFUSED"}, (False, True)),
    "timeout": ({"read_timeout": 0.3, "headers": {"x-mock-latency-ms": "3000"}},
                (False, True)),
    "prestream": ({"headers": {"x-mock-fail-after": "0"}}, (True,)),
}
CASES = [(case, stream) for case, (_, modes) in FAULTS.items() for stream in modes]


def group_name(case: str, stream: bool) -> str:
    return f"{case}-{'stream' if stream else 'json'}"


def deployment(upstream: Proc, name: str, dep_id: str, price: float,
               **fields: Any) -> dict[str, Any]:
    base = f"{upstream.url}/v1"
    if fields.get("api_base") == "REFUSED":
        fields["api_base"] = f"http://127.0.0.1:{free_port()}/v1"
    return {"name": name, "id": dep_id, "provider": "openai", "model": "upstream-model",
            "api_base": base, "input_cost_per_mtok": price, **fields}


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    models = []
    groups: dict[str, Any] = {}
    for case, stream in CASES:
        name = group_name(case, stream)
        models.append(deployment(upstream, name, f"{name}-bad", 1.0, **FAULTS[case][0]))
        models.append(deployment(upstream, name, f"{name}-good", 2.0))
        groups[name] = {"strategy": "cheapest"}
    # One-deployment groups that always fail, rescued by a fallback group (one per test, so
    # that no test sees another's failures open the breaker).
    for suffix in ("json", "stream", "header", "body"):
        models.append(deployment(upstream, f"solo-{suffix}", f"solo-{suffix}-bad", 1.0,
                                 headers={"x-mock-status": "503"}))
        groups[f"solo-{suffix}"] = {"fallbacks": ["rescue"]}
    models.append(deployment(upstream, "rescue", "rescue-good", 1.0))
    # A small-context group whose long prompts go to a larger one.
    models.append(deployment(upstream, "tiny", "tiny-0", 1.0, max_input_tokens=50))
    groups["tiny"] = {"context_window_fallbacks": ["rescue"]}
    # Fails mid-stream after three events: must not be retried.
    models.append(deployment(upstream, "midway", "midway-bad", 1.0,
                             headers={"x-mock-fail-after": "3", "x-mock-tokens": "20"}))
    models.append(deployment(upstream, "midway", "midway-good", 2.0))
    groups["midway"] = {"strategy": "cheapest"}
    # The auto router's catalogue: only deployments with a tier take part.
    models.append(deployment(upstream, "t-small", "t-small", 0.1, tier="small",
                             capabilities=["tools"]))
    models.append(deployment(upstream, "t-medium", "t-medium", 1.0, tier="medium",
                             capabilities=["vision", "tools", "json"]))
    models.append(deployment(upstream, "t-large", "t-large", 5.0, tier="large",
                             capabilities=["vision", "tools", "json"]))
    extra = {"router_settings": {"backoff_initial_s": 0.05, "backoff_max_s": 0.2},
             "groups": groups, "auto_routers": [{"name": "auto"}]}
    with running(start_gateway(e2e_tmp, models, env=QUICK_STOP,
                               config_extra=extra)) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> Iterator[openai.OpenAI]:
    # Closed after each test, so no connection outlives it (ResourceWarning is an error).
    with sdk_client(gateway) as sdk:
        yield sdk


@pytest.mark.parametrize(("case", "stream"), CASES,
                         ids=[group_name(c, s) for c, s in CASES])
def test_fault_is_recovered_by_retry(client: openai.OpenAI, case: str, stream: bool) -> None:
    name = group_name(case, stream)
    raw = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES,
                                                          stream=stream)
    assert raw.headers["x-neuroroute-deployment"] == f"{name}-good"
    assert int(raw.headers["x-neuroroute-attempts"]) == 2
    parsed = raw.parse()
    if stream:
        chunks = list(parsed)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = parsed.choices[0].message.content
    assert text and "mock" in text


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_group_rescues_a_failing_group(client: openai.OpenAI, stream: bool) -> None:
    name = "solo-stream" if stream else "solo-json"
    raw = client.chat.completions.with_raw_response.create(model=name, messages=MESSAGES,
                                                          stream=stream)
    assert raw.headers["x-neuroroute-deployment"] == "rescue-good"
    assert raw.headers["x-neuroroute-attempts"] == "4"  # 1 + 2 retries on solo, then rescue
    assert raw.headers["x-neuroroute-route"] == f"model={name}; fallback=rescue"
    parsed = raw.parse()
    if stream:
        assert list(parsed)[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("how", ["header", "body"])
def test_fallbacks_disabled_per_request_return_the_error(client: openai.OpenAI,
                                                          upstream: Proc, how: str) -> None:
    options: dict[str, Any] = (
        {"extra_headers": {"x-neuroroute-fallbacks": "off"}} if how == "header"
        else {"extra_body": {"neuroroute": {"fallbacks": False}}})
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=f"solo-{how}", messages=MESSAGES, **options)
    assert info.value.status_code == 503 and info.value.code == "mock_503"
    assert info.value.response.headers["x-neuroroute-attempts"] == "3"
    last_body = requests.get(f"{upstream.url}/_stats", timeout=5).json()["last_body"]
    assert "neuroroute" not in last_body  # the gateway-only field never reaches an upstream


def test_long_prompt_goes_to_the_context_window_fallback(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "lorem ipsum " * 100}])
    assert raw.headers["x-neuroroute-deployment"] == "rescue-good"
    assert raw.headers["x-neuroroute-attempts"] == "1"
    short = client.chat.completions.with_raw_response.create(model="tiny", messages=MESSAGES)
    assert short.headers["x-neuroroute-deployment"] == "tiny-0"


def test_failure_after_the_first_chunk_ends_the_stream_with_an_error(
        client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="midway", messages=MESSAGES,
                                                          stream=True)
    assert raw.headers["x-neuroroute-deployment"] == "midway-bad"
    assert raw.headers["x-neuroroute-attempts"] == "1"
    received = []
    with raw.parse() as stream, pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3 and "failed" in info.value.message


def test_cooldown_is_shared_by_two_workers_through_redis(upstream: Proc,
                                                        tmp_path: Path) -> None:
    """After the bad deployment's breaker opens, no worker sends it anything more."""
    client = redis_client_or_skip()
    prefix = f"neuroroute-e2e-{uuid.uuid4().hex}"
    models = [deployment(upstream, "pair", "pair-bad", 1.0, headers={"x-mock-status": "500"}),
              deployment(upstream, "pair", "pair-good", 1.0)]
    extra = {"router_settings": {"cooldown": {"failures": 2, "window_s": 60,
                                              "cooldown_s": 120}}}
    env = {"NEUROROUTE_REDIS_URL": REDIS_URL, "NEUROROUTE_REDIS_NAMESPACE": prefix,
           **QUICK_STOP}
    try:
        with running(start_gateway(tmp_path, models, workers=2, env=env,
                                   config_extra=extra)) as gw:
            post = lambda: requests.post(  # noqa: E731 - a one-line request helper
                f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=20,
                json={"model": "pair", "messages": MESSAGES})
            for _ in range(40):  # until the second failure opens the breaker
                assert post().status_code == 200
                if client.exists(f"{prefix}:cb:{{pair-bad}}:open"):
                    break
            assert client.exists(f"{prefix}:cb:{{pair-bad}}:open")

            # Every worker reports the shared state; collect both workers' views.
            reports: dict[int, Any] = {}
            deadline = time.monotonic() + 20
            with ThreadPoolExecutor(16) as pool:
                while len(reports) < 2 and time.monotonic() < deadline:
                    for r in pool.map(lambda _: requests.get(f"{gw.url}/admin/routing",
                                                             headers=AUTH, timeout=10),
                                      range(32)):
                        reports[r.json()["pid"]] = r.json()
                assert len(reports) == 2, "both workers should have answered"
                for report in reports.values():
                    assert report["breaker_backend"] == "redis"
                    bad = next(d for d in report["groups"][0]["deployments"]
                               if d["id"] == "pair-bad")
                    assert bad["state"] == "open"
                served = [r.headers["x-neuroroute-deployment"]
                          for r in pool.map(lambda _: post(), range(40))]
            assert served == ["pair-good"] * 40  # no worker tried the open deployment
    finally:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)


def test_redis_url_that_does_not_answer_never_fails_a_request(upstream: Proc,
                                                              tmp_path: Path) -> None:
    models = [deployment(upstream, "pair", "pair-good", 1.0)]
    env = {"NEUROROUTE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", **QUICK_STOP}
    with running(start_gateway(tmp_path, models, env=env)) as gw:
        for _ in range(3):
            resp = requests.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=20,
                                 json={"model": "pair", "messages": MESSAGES})
            assert resp.status_code == 200
        ready = requests.get(f"{gw.url}/health/ready", timeout=5).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["routing"]["detail"]["breaker_backend"] == "redis-unavailable"



@pytest.mark.parametrize(("messages", "stream", "served", "tier"), [
    (MESSAGES, False, "t-small", "small"),
    ([{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}],
     False, "t-medium", "medium"),
    ([{"role": "user", "content": "Prove that there are infinitely many primes."}], True,
     "t-large", "large"),
], ids=["chit-chat", "image", "proof-stream"])
def test_auto_router_picks_by_capability_and_price(client: openai.OpenAI, messages: Any,
                                                   stream: bool, served: str,
                                                   tier: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages,
                                                          stream=stream)
    assert raw.headers["x-neuroroute-deployment"] == served
    assert raw.headers["x-neuroroute-route"].startswith(f"auto; tier={tier}; reason=")
    parsed = raw.parse()
    if stream:
        assert list(parsed)[-1].choices[0].finish_reason == "stop"
    else:
        assert parsed.choices[0].message.content
