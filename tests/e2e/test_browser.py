"""Browser clients against a real Gunicorn: what goes on the wire (no Server header, JSON
error pages from Gunicorn itself, CORS on streams), then real headless Chromium: Swagger UI
at /docs lists every operation and "Try it out" on the chat operation answers 200, and a
page of another origin streams a chat completion with ``fetch``.

Chromium is Debian's (/usr/bin/chromium, installed by .ci/run), driven by Playwright with
``executable_path``: no browser is downloaded. Without it these tests skip, and fail when
CI=true. Screenshots of Swagger UI are kept in test-artifacts/.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.browser import chromium
from tests.procs import MASTER_KEY, ROOT, Proc, running, start_gateway

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"
# The shipped model file's first model (config/neuroroute.yaml), as a new user has it.
MODELS = [{"name": "mock-gpt", "provider": "mock", "model": "mock-gpt",
           "mock": {"latency_ms": 20, "ttft_ms": 30, "tokens": 24, "interval_ms": 15}}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "mock-gpt", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}


class _Page(BaseHTTPRequestHandler):
    """An empty page: the other origin a browser client is served from."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<!doctype html><title>client</title><p>client page</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two page servers: an origin the gateway allows, and one it does not."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        allowed, other = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
        yield allowed, other
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def gateway(e2e_tmp: Path, origins: tuple[str, str]) -> Iterator[Proc]:
    proc = start_gateway(e2e_tmp, MODELS, env={"NEUROROUTE_CORS_ORIGINS": origins[0]})
    with running(proc):
        yield proc


# -- on the wire ---------------------------------------------------------------------------


def test_no_server_header_anywhere(gateway: Proc) -> None:
    answers = [requests.get(f"{gateway.url}/health/live", timeout=10),
               requests.get(f"{gateway.url}/nowhere", timeout=10),
               requests.get(f"{gateway.url}/v1/models", timeout=10),
               requests.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=AUTH,
                             timeout=10)]
    for resp in answers:
        assert "Server" not in resp.headers, (resp.status_code, resp.headers)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert answers[-1].headers["Content-Type"].startswith("text/event-stream")


@pytest.mark.parametrize(("status", "request_kwargs"), [
    (414, {"params": {"after": "x" * 5000}}),
    (431, {"headers": {"X-Padding": "y" * 9000}}),
])
def test_gunicorn_refusals_are_the_documented_envelope(gateway: Proc, status: int,
                                                       request_kwargs: dict[str, Any]) -> None:
    resp = requests.get(f"{gateway.url}/admin/keys", timeout=10, **request_kwargs)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json" and "Server" not in resp.headers
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    doc = requests.get(f"{gateway.url}/openapi.json", timeout=10).json()
    assert str(status) in doc["paths"]["/admin/keys"]["get"]["responses"]


def test_preflight_and_stream_carry_cors_headers(gateway: Proc,
                                                 origins: tuple[str, str]) -> None:
    allowed, other = origins
    preflight = requests.options(f"{gateway.url}/v1/chat/completions", timeout=10, headers={
        "Origin": allowed, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == allowed
    with requests.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                       headers={**AUTH, "Origin": allowed}, stream=True) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == allowed
        assert "x-neuroroute-deployment" in resp.headers["Access-Control-Expose-Headers"]
        assert b"[DONE]" in b"".join(resp.iter_content(None))
    refused = requests.options(f"{gateway.url}/v1/chat/completions", timeout=10, headers={
        "Origin": other, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers


# -- in Chromium ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


def test_swagger_ui_lists_operations_and_try_it_out_answers(gateway: Proc, page: Any) -> None:
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(req.url))
    page.goto(f"{gateway.url}/docs")
    page.wait_for_selector(".opblock-summary")
    doc = requests.get(f"{gateway.url}/openapi.json", timeout=10).json()
    expected = sum(1 for ops in doc["paths"].values() for m in ops if m != "parameters")
    assert page.locator(".opblock").count() == expected
    assert "Unable to render this definition" not in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "swagger-ui.png"))

    # The bearer key, through Swagger UI's own Authorize dialog.
    page.click("button.authorize")
    page.fill(".auth-container input", MASTER_KEY)
    page.click(".auth-btn-wrapper button.authorize")
    page.click(".auth-btn-wrapper button.btn-done")

    chat = page.locator(".opblock-post", has_text="/v1/chat/completions")
    chat.locator(".opblock-summary").click()
    chat.locator("button.try-out__btn").click()
    body = chat.locator("textarea.body-param__text")
    prefilled = json.loads(body.input_value())
    assert prefilled["model"] == "mock-gpt" and "Unknown Type" not in body.input_value()
    chat.locator("button.execute").click()
    status = chat.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("200"), status.inner_text()
    assert "chat.completion" in chat.locator(".live-responses-table").inner_text()

    chat.locator(".live-responses-table").screenshot(
        path=str(ARTIFACTS / "swagger-ui-try-it-out.png"))
    assert not failed, failed  # every file came from the gateway itself: no CDN
    assert not [m for m in console if "Content Security Policy" in m or m.startswith("error")]


STREAM_SCRIPT = """async ([url, key, body]) => {
  try {
    const resp = await fetch(url, {method: "POST", body: JSON.stringify(body),
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"}});
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let text = "", reads = 0;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      reads += 1;
      text += decoder.decode(value, {stream: true});
    }
    return {status: resp.status, type: resp.headers.get("content-type"),
            requestId: resp.headers.get("x-request-id"),
            deployment: resp.headers.get("x-neuroroute-deployment"), reads, text};
  } catch (err) {
    return {error: String(err)};
  }
}"""


def test_a_page_of_an_allowed_origin_streams_with_fetch(gateway: Proc, page: Any,
                                                         origins: tuple[str, str]) -> None:
    allowed, other = origins
    page.goto(allowed)
    result = page.evaluate(STREAM_SCRIPT, [f"{gateway.url}/v1/chat/completions", MASTER_KEY,
                                           CHAT])
    assert result.get("status") == 200, result
    assert result["type"].startswith("text/event-stream")
    assert result["requestId"] and result["deployment"] == "mock-gpt#0"  # exposed headers
    events = [line for line in result["text"].splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) > 10
    assert result["reads"] > 1  # chunk by chunk, not one buffered body

    page.goto(other)
    refused = page.evaluate(STREAM_SCRIPT, [f"{gateway.url}/v1/chat/completions", MASTER_KEY,
                                            CHAT])
    assert "error" in refused and "Failed to fetch" in refused["error"], refused
