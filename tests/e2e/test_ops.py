"""Operations end to end: real nginx in front of real Gunicorn, metrics across workers,
graceful reload and stop under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from app.metrics import FLUSH_INTERVAL_S
from tests.procs import MASTER_KEY, ROOT, Proc, free_port, running, start_gateway
from tests.services import require_binary

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def nginx_binary() -> str:
    return require_binary("nginx", "/usr/sbin/nginx")


def start_nginx(tmp: Path, gateway_port: int) -> Proc:
    port = free_port()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream neuroroute {{ server 127.0.0.1:{gateway_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        include {ROOT}/deploy/neuroroute-proxy.conf;
    }}
}}
""")
    log = tmp / "nginx.out"
    with log.open("wb") as fh:
        popen = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(tmp)], stdout=fh,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    proc = Proc(popen, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(proc.url + "/health/live", timeout=1)
            return proc
        except requests.RequestException:
            if popen.poll() is not None:
                break
            time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"nginx did not start: {proc.output()} {(tmp / 'error.log').read_text()}")


@pytest.fixture(scope="module")
def proxied(upstream: Proc, e2e_tmp: Path) -> Iterator[tuple[Proc, Proc]]:
    models = [{"name": "up", "provider": "openai", "model": "u",
               "api_base": f"{upstream.url}/v1"}]
    env = {"NEUROROUTE_TRUSTED_PROXY_HOPS": "1",
           "NEUROROUTE_MAX_BODY_BYTES": str(1024 * 1024)}
    with running(start_gateway(e2e_tmp, models, env=env)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        with running(start_nginx(e2e_tmp, port)) as nginx:
            yield gw, nginx


def access_lines(gw: Proc) -> list[dict[str, Any]]:
    out = []
    for line in gw.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "app.access":
                out.append(entry)
    return out


def test_stream_through_nginx_arrives_chunk_by_chunk(proxied: tuple[Proc, Proc]) -> None:
    _, nginx = proxied
    body = {"model": "up", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "mock": {"tokens": 10, "interval_ms": 100}}
    arrivals = []
    start = time.monotonic()
    with requests.post(f"{nginx.url}/v1/chat/completions", json=body, headers=AUTH,
                       stream=True, timeout=10) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 13  # role chunk, 10 tokens, finish chunk, [DONE]
    # Time to first chunk is the mock's (~0), not the whole stream's (~0.9 s).
    assert arrivals[0] < 0.4 and arrivals[-1] > 0.8


def test_gateway_sees_the_real_client_address(proxied: tuple[Proc, Proc]) -> None:
    gw, nginx = proxied
    port = int(nginx.url.rsplit(":", 1)[1])
    # Connect to nginx from another loopback address, so proxy and client differ.
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=("127.0.0.2", 0)) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Request-ID: from-127-0-0-2"
                     b"\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        lines = [e for e in access_lines(gw) if e["request_id"] == "from-127-0-0-2"]
        if lines:
            break
        time.sleep(0.05)
    assert lines and lines[0]["client_ip"] == "127.0.0.2"


@pytest.mark.parametrize(("size", "who"), [(2 * 1024 * 1024, "gateway"),
                                           (18 * 1024 * 1024, "nginx")])
def test_oversized_bodies_get_openai_json(proxied: tuple[Proc, Proc], size: int,
                                          who: str) -> None:
    _, nginx = proxied
    body = json.dumps({"model": "up", "messages": [{"role": "user", "content": "x" * size}]})
    resp = requests.post(f"{nginx.url}/v1/chat/completions", data=body, timeout=20,
                         headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 413, who
    assert resp.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431,
     "request_header_fields_too_large"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
])
def test_nginx_own_refusals_are_openai_json(proxied: tuple[Proc, Proc], raw: bytes,
                                            status: int, code: str) -> None:
    _, nginx = proxied
    host, port = nginx.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b"application/json" in head
    assert json.loads(body)["error"]["code"] == code


def test_metrics_not_served_through_the_proxy(proxied: tuple[Proc, Proc]) -> None:
    _, nginx = proxied
    resp = requests.get(f"{nginx.url}/metrics", timeout=5)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "permission_denied"


def counter_total(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_across_two_workers(upstream: Proc, tmp_path: Path) -> None:
    models = [{"name": "up", "provider": "openai", "model": "u",
               "api_base": f"{upstream.url}/v1"}]
    route = "/v1/chat/completions"
    # Which worker accepts a connection is the kernel's choice: every attempt must add up,
    # and attempts repeat (fresh gateway, fresh counters) until both workers served chat.
    for _attempt in range(6):
        with running(start_gateway(tmp_path, models, workers=2)) as gw:
            for i in range(40):
                with requests.post(f"{gw.url}/v1/chat/completions", timeout=10, headers={
                        **AUTH, "Connection": "close"}, json={
                        "model": "up" if i % 4 else f"random-model-{i}", "stream": i % 2 == 0,
                        "stream_options": {"include_usage": True} if i % 2 == 0 else None,
                        "messages": [{"role": "user", "content": "x"}]}) as resp:
                    resp.content  # noqa: B018 - read the whole answer
            # Workers write their metrics in batches (every second): wait for the last batch.
            time.sleep(FLUSH_INTERVAL_S * 1.5)
            scrapes = [requests.get(f"{gw.url}/metrics", headers={"Connection": "close"},
                                    timeout=5).text for _ in range(4)]
        for text in scrapes:
            assert counter_total(text, "neuroroute_requests_total", route=route,
                                 model="up", status="200") == 30
            assert counter_total(text, "neuroroute_requests_total", route=route,
                                 model="other", status="404") == 10
            assert "random-model" not in text and MASTER_KEY not in text
            assert counter_total(text, "neuroroute_tokens_total", model="up",
                                 direction="completion") == 30 * 16
        # Both workers served chat traffic, so equal totals on every scrape mean summed.
        if len({e["pid"] for e in access_lines(gw) if e["path"] == route}) == 2:
            return
    pytest.fail("in 6 attempts the two workers never shared the traffic")


async def _streams(url: str, count: int, tokens: int, interval_ms: int) -> list[Any]:
    async def one(client: openai.AsyncOpenAI, i: int) -> int:
        stream = await client.chat.completions.create(
            model="up", messages=[{"role": "user", "content": f"s{i}"}], stream=True,
            extra_body={"mock": {"tokens": tokens, "interval_ms": interval_ms}})
        words = [c.choices[0].delta.content async for c in stream
                 if c.choices and c.choices[0].delta.content]
        return len(words)

    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0,
                                  timeout=60) as client:
        return await asyncio.gather(*(one(client, i) for i in range(count)),
                                    return_exceptions=True)


def _signal_during_streams(gw: Proc, sig: int, count: int = 100) -> list[Any]:
    async def main() -> list[Any]:
        task = asyncio.ensure_future(_streams(gw.url, count, tokens=40, interval_ms=50))
        await asyncio.sleep(0.7)  # every stream is under way (each lasts ~2 s)
        os.kill(gw.popen.pid, sig)
        return await task

    return asyncio.run(main())


def test_reload_under_load_cuts_no_stream(upstream: Proc, tmp_path: Path) -> None:
    models = [{"name": "up", "provider": "openai", "model": "u",
               "api_base": f"{upstream.url}/v1"}]
    with running(start_gateway(tmp_path, models, workers=2)) as gw:
        results = _signal_during_streams(gw, signal.SIGHUP)
        assert [r for r in results if not isinstance(r, int)] == []
        assert results == [40] * 100  # every stream complete, every token there
        # The reloaded workers serve new requests.
        resp = requests.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=10,
                             json={"model": "up", "messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 200
        assert "Handling signal: hup" in gw.output()


def test_sigterm_lets_in_flight_streams_finish(upstream: Proc, tmp_path: Path) -> None:
    models = [{"name": "up", "provider": "openai", "model": "u",
               "api_base": f"{upstream.url}/v1"}]
    with running(start_gateway(tmp_path, models, workers=2)) as gw:
        results = _signal_during_streams(gw, signal.SIGTERM, count=50)
        assert results == [40] * 50
        assert gw.popen.wait(20) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{gw.url}/health/live", timeout=2)
