"""End to end: real Gunicorn (gevent worker) + real mock upstream + the official openai SDK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.openai_spec import assert_valid
from tests.procs import MASTER_KEY, ROOT, Proc, free_port, running, sdk_client, start_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    models = [
        {"name": "up", "provider": "openai", "model": "upstream-model",
         "api_base": f"{upstream.url}/v1", "api_key": "sk-upstream-e2e"},
        {"name": "up-slow", "provider": "openai", "model": "upstream-model",
         "api_base": f"{upstream.url}/v1", "read_timeout": 0.5},
        {"name": "refused", "provider": "openai", "model": "m",
         "api_base": f"http://127.0.0.1:{free_port()}/v1"},
        {"name": "mock-fast", "provider": "mock", "model": "mock-fast",
         "mock": {"tokens": 6}},
    ]
    with running(start_gateway(e2e_tmp, models)) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> openai.OpenAI:
    return sdk_client(gateway)


def stats(upstream: Proc) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{upstream.url}/_stats", timeout=5).json()
    return result


def test_list_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["up", "up-slow", "refused", "mock-fast"]
    assert client.models.retrieve("mock-fast").owned_by == "mock"


@pytest.mark.parametrize("model", ["up", "mock-fast"])
def test_non_stream(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}],
        extra_headers={"X-Request-ID": "e2e-req-1"})
    assert raw.headers["x-request-id"] == "e2e-req-1"
    completion = raw.parse()
    assert_valid(completion.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_upstream_receives_request_id_key_and_model(client: openai.OpenAI,
                                                    upstream: Proc) -> None:
    client.chat.completions.create(model="up", messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"X-Request-ID": "trace-77"},
                                   extra_body={"vendor_param": {"a": 1}})
    seen = stats(upstream)
    assert seen["last_headers"]["x-request-id"] == "trace-77"
    assert seen["last_headers"]["authorization"] == "Bearer sk-upstream-e2e"
    assert seen["last_body"]["model"] == "upstream-model"
    assert seen["last_body"]["vendor_param"] == {"a": 1}


@pytest.mark.parametrize("model", ["up", "mock-fast"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_stream(client: openai.OpenAI, model: str, include_usage: bool) -> None:
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=True,
        stream_options={"include_usage": include_usage})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    for c in chunks:
        assert_valid(c.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == (1 if include_usage else 0)
    if include_usage:
        assert usage[0].completion_tokens > 0


def test_stream_arrives_chunk_by_chunk(gateway: Proc) -> None:
    """Chunks are relayed as the upstream produces them, not buffered to the end."""
    body = {"model": "up", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "mock": {"tokens": 10, "interval_ms": 100}}
    arrivals = []
    start = time.monotonic()
    with requests.post(f"{gateway.url}/v1/chat/completions", json=body, stream=True, timeout=10,
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["X-Accel-Buffering"] == "no"
        for _ in resp.iter_lines():
            arrivals.append(time.monotonic() - start)
    # The first event arrives long before the last: ~0 s versus ~0.9 s.
    assert arrivals[0] < 0.4 and arrivals[-1] > 0.8


def test_bad_key(gateway: Proc) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.status_code == 401


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


def test_malformed_body(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="up", messages=[{"role": "wizard", "content": "x"}])
    assert info.value.param == "messages[0].role"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_is_relayed(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="up", messages=[{"role": "user", "content": "x"}],
                                       stream=stream, extra_body={"mock": {"status": 500}})
    assert info.value.status_code == 500
    assert info.value.code == "mock_500"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="up-slow",
                                       messages=[{"role": "user", "content": "x"}],
                                       stream=stream, extra_body={"mock": {"latency_ms": 2000}})
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"


@pytest.mark.parametrize("stream", [False, True])
def test_connection_refused_is_502(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="refused",
                                       messages=[{"role": "user", "content": "x"}],
                                       stream=stream)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_unavailable"


def test_failure_after_first_chunk_ends_with_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="up", messages=[{"role": "user", "content": "x"}], stream=True,
        extra_body={"mock": {"tokens": 20, "fail_after": 4}})
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 4  # what arrived before the failure reached the client
    assert "failed" in info.value.message


def test_client_disconnect_closes_the_upstream(gateway: Proc, upstream: Proc) -> None:
    before = stats(upstream)["streams_disconnected"]
    body = {"model": "up", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "mock": {"tokens": 500, "interval_ms": 20}}
    resp = requests.post(f"{gateway.url}/v1/chat/completions", json=body, stream=True,
                         timeout=10, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    lines = resp.iter_lines()
    for _ in range(3):
        next(lines)
    resp.close()  # the client goes away after three events of a ten-second stream
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if stats(upstream)["streams_disconnected"] > before:
            break
        time.sleep(0.05)
    seen = stats(upstream)
    assert seen["streams_disconnected"] == before + 1, seen
    assert seen["active_streams"] == 0


def test_200_concurrent_streams_through_one_worker(gateway: Proc) -> None:
    async def one(client: openai.AsyncOpenAI, i: int) -> str:
        stream = await client.chat.completions.create(
            model="up", messages=[{"role": "user", "content": f"stream {i}"}], stream=True,
            extra_body={"mock": {"tokens": 20, "interval_ms": 10}})
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        return "".join(parts)

    async def main() -> list[str | BaseException]:
        async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY,
                                      max_retries=0, timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)),
                                        return_exceptions=True)

    started = time.monotonic()
    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert all(isinstance(r, str) and len(r.split()) == 20 for r in results)
    assert time.monotonic() - started < 30


def test_bad_config_exits_non_zero_naming_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("models:\n  - name: x\n    provider: openaii\n    model: m\n")
    env = {"NEUROROUTE_MASTER_KEY": MASTER_KEY, "NEUROROUTE_CONFIG": str(config),
           "PORT": str(free_port()), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    assert str(config) in result.stderr and "models[0].provider" in result.stderr


def test_missing_master_key_refuses_to_start(tmp_path: Path) -> None:
    env = {"PORT": str(free_port()), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "wsgi:app"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    assert "NEUROROUTE_MASTER_KEY" in result.stderr
