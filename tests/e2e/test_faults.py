"""Upstream faults and hostile bodies, through a real Gunicorn and the real mock upstream.

A stream that breaks after its first byte is still HTTP 200 (the headers are gone), but it is
a failure everywhere else: its access line, usage record and metrics carry its error.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from sqlalchemy import create_engine, select

from app.db.models import UsageRow
from tests.procs import MASTER_KEY, Proc, running, sdk_client, start_gateway

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    models = [{"name": "up", "provider": "openai", "model": "u",
               "api_base": f"{upstream.url}/v1"}]
    env = {"NEUROROUTE_UPSTREAM_READ_TIMEOUT": "0.5", "NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2",
           "NEUROROUTE_MAX_BODY_BYTES": "2000"}
    with running(start_gateway(e2e_tmp, models, env=env)) as proc:
        yield proc


def database(gw: Proc) -> str:
    """The gateway's own SQLite file (start_gateway puts it beside its log)."""
    return f"sqlite:///{Path(gw.log).with_suffix('.db')}"


def usage_row(gw: Proc, request_id: str) -> Any:
    engine = create_engine(database(gw))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(select(UsageRow).where(
                    UsageRow.request_id == request_id)).first()
            if row is not None:
                return row
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError(f"no usage record for {request_id}")


def access_line(gw: Proc, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gw.output().splitlines():
            if request_id in line and '"app.access"' in line:
                return dict(json.loads(line))
        time.sleep(0.1)
    raise AssertionError(f"no access line for {request_id}")


def metric(gw: Proc, name: str, **labels: str) -> float:
    time.sleep(1.2)  # metrics are written in batches, every second
    text = requests.get(f"{gw.url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(("mock", "code", "status"), [
    ({"fail_after": 3}, "upstream_unavailable", 502),  # the upstream resets mid-stream
    ({"tokens": 6, "interval_ms": 1500}, "upstream_timeout", 504),  # it stalls mid-stream
])
def test_a_stream_that_fails_after_its_first_byte_carries_its_error(
        gateway: Proc, mock: dict[str, Any], code: str, status: int) -> None:
    rid = f"broken-{code}"
    with sdk_client(gateway) as client:
        stream = client.chat.completions.create(
            model="up", messages=MESSAGES, stream=True, extra_body={"mock": mock},
            extra_headers={"X-Request-ID": rid})
        with pytest.raises(openai.APIError) as info:
            for _ in stream:
                pass
    assert code in str(info.value.body or info.value) or info.value.code == code
    line = access_line(gateway, rid)
    assert line["status"] == 200 and line["error_code"] == code
    assert line["outcome_status"] == status
    row = usage_row(gateway, rid)
    assert (row.status, row.error_code, row.stream, row.cancelled) == (status, code, True, False)
    assert row.completion_tokens > 0 and row.estimated  # what was relayed, estimated
    assert metric(gateway, "neuroroute_stream_errors_total", code=code) >= 1
    assert metric(gateway, "neuroroute_requests_total", route="/v1/chat/completions",
                  status=str(status)) >= 1


def test_an_upstream_that_stalls_after_its_headers_is_a_timeout(gateway: Proc) -> None:
    resp = requests.post(f"{gateway.url}/v1/chat/completions", headers=AUTH, timeout=20, json={
        "model": "up", "messages": MESSAGES, "mock": {"stall_body_ms": 3000},
        "neuroroute": {"fallbacks": False}})
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "upstream_timeout"
    assert "Could not connect" not in resp.json()["error"]["message"]


def test_a_malformed_upstream_event_ends_the_stream_with_an_error_event(gateway: Proc) -> None:
    """The SDK would die on the truncated JSON with a decode error; it gets the gateway's
    error event instead, after the well-formed events (relayed byte for byte)."""
    with sdk_client(gateway) as client:
        stream = client.chat.completions.create(
            model="up", messages=MESSAGES, stream=True, extra_body={
                "mock": {"bad_event_after": 3}})
        contents = []
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    contents.append(chunk.choices[0].delta.content)
    assert contents  # what came before the bad event arrived
    assert not isinstance(info.value, json.JSONDecodeError)
    assert "malformed" in str(info.value)


def chunked_post(gw: Proc, body: bytes, pieces: int = 4) -> tuple[int, dict[str, Any]]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length); (status, JSON)."""
    host, port = gw.url.removeprefix("http://").split(":")
    step = max(1, len(body) // pieces)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                      for i in range(0, len(body), step))
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if b"chunked" in head.lower():  # a chunked answer: the body is its first chunk
        rest = rest.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(rest)


def test_a_chunked_body_over_the_limit_is_413_never_cut_and_parsed(gateway: Proc) -> None:
    small = json.dumps({"model": "up", "messages": MESSAGES}).encode()
    assert chunked_post(gateway, small)[0] == 200
    # Valid JSON whose first 2,000 bytes are valid JSON too would be silently cut there.
    padded = json.dumps({"model": "up", "messages": MESSAGES, "user": "x" * 3000}).encode()
    status, body = chunked_post(gateway, padded)
    assert status == 413 and body["error"]["code"] == "request_too_large"
