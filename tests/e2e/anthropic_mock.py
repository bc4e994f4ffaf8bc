"""A local Anthropic Messages API look-alike (aiohttp) for end-to-end tests, plus a token endpoint.

    python -m tests.e2e.anthropic_mock --port 9200

``POST /v1/messages`` answers like Anthropic, streamed (``"stream": true``) or not, with
real event sequences: text, or two interleaved tool_use blocks when the request has tools.
The last user text selects failures: ``overload`` -> HTTP 529 ``overloaded_error``,
``midstream-error`` -> an ``error`` event after the first text delta. Requests need
``anthropic-version`` and either ``x-api-key: sk-ant-e2e`` or a bearer token issued by
``POST /oauth/token`` (client credentials ``e2e-client`` / ``e2e-secret``; each token request
takes 200 ms so that concurrent callers overlap). ``GET /_stats`` returns counters.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from tests import anthropic_fixtures as fx

API_KEY = "sk-ant-e2e"
CLIENT = ("e2e-client", "e2e-secret")
EVENT_INTERVAL_S = 0.01

STATS: dict[str, Any] = {"messages": 0, "token_requests": 0, "last_headers": {},
                         "last_body": None}
TOKENS: set[str] = set()


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}},
                             status=status)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def _authorized(request: web.Request) -> bool:
    if request.headers.get("x-api-key") == API_KEY:
        return True
    auth = request.headers.get("Authorization", "")
    return auth.startswith("Bearer ") and auth[len("Bearer "):] in TOKENS


def _events(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    if body.get("tools"):
        return fx.two_tools_stream()
    events = fx.text_stream("Hello", " from", " the", " Anthropic", " mock.")
    if "midstream-error" in text:
        return [*events[:4], fx.error_event("api_error", "Internal server error")]
    return events


def _message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-stream message that a stream of ``events`` adds up to."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    stop_reason, output_tokens = "end_turn", 0
    for e in events:
        if e["type"] == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"])
        elif e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta":
            blocks[e["index"]]["text"] += e["delta"]["text"]
        elif e["type"] == "content_block_delta":
            partial[e["index"]] = partial.get(e["index"], "") + e["delta"]["partial_json"]
        elif e["type"] == "message_delta":
            stop_reason, output_tokens = e["delta"]["stop_reason"], e["usage"]["output_tokens"]
    for index, raw in partial.items():
        blocks[index]["input"] = json.loads(raw)
    content = [blocks[i] for i in sorted(blocks)]
    return fx.message(content, stop_reason, input_tokens=25, output_tokens=output_tokens)


async def messages(request: web.Request) -> web.StreamResponse:
    STATS["messages"] += 1
    STATS["last_headers"] = {k.lower(): v for k, v in request.headers.items()}
    body = await request.json()
    STATS["last_body"] = body
    if not _authorized(request):
        return _error(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version header is required")
    if not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
        return _error(400, "invalid_request_error", "max_tokens and messages are required")
    text = _last_user_text(body)
    if "overload" in text:
        return _error(529, "overloaded_error", "Overloaded")
    events = _events(body, text)
    if not body.get("stream"):
        return web.json_response(_message(events))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    for event in events:
        await resp.write(fx.sse([event]))
        await asyncio.sleep(EVENT_INTERVAL_S)
    await resp.write_eof()
    return resp


async def token(request: web.Request) -> web.Response:
    STATS["token_requests"] += 1
    form = await request.post()
    expected = "Basic " + base64.b64encode(":".join(CLIENT).encode()).decode()
    if form.get("grant_type") != "client_credentials" \
            or request.headers.get("Authorization") != expected:
        return web.json_response({"error": "invalid_client"}, status=401)
    await asyncio.sleep(0.2)
    issued = f"mock-token-{STATS['token_requests']}"
    TOKENS.add(issued)
    return web.json_response({"access_token": issued, "token_type": "bearer",
                              "expires_in": 3600})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(STATS)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/_stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
