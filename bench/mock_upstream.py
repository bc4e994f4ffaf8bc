"""An OpenAI-compatible mock upstream server (aiohttp), for end-to-end tests and benchmarks.

    python bench/mock_upstream.py --port 9100

Behaviour per request comes from, in order of precedence: a ``mock`` object in the JSON body
(clients reach it through the gateway, which passes unknown fields through), ``x-mock-*``
headers (e.g. set per deployment in the gateway's config), then environment defaults
``MOCK_LATENCY_MS``, ``MOCK_TTFT_MS``, ``MOCK_TOKENS``, ``MOCK_INTERVAL_MS``.

Keys of ``mock`` / headers ``x-mock-<key>``:
  latency_ms   delay before the response starts          ttft_ms   then until the first token
  tokens       completion tokens                          interval_ms  between stream tokens
  status       answer with this HTTP status and an OpenAI error body
  fail_after   abort the connection after this many stream events (0 = before any)
  no_done      end the stream without ``data: [DONE]``
  not_sse      answer a stream request with a JSON body instead of an event stream
  bad_json     answer a non-stream request with a body that is not JSON
  retry_after  ``Retry-After`` header value sent with an error status
  bad_event_after  send a truncated JSON event after this many stream events
  stall_body_ms  non-stream: send the headers and half the body, then wait this long
  prompt_tokens  the prompt tokens reported in ``usage`` (default: about characters / 4)

With ``tools`` in the body, the answer calls the first tool (arguments ``{"city": "Paris"}``,
streamed in two fragments, finish reason ``tool_calls``) unless the last message is a tool
result; then it answers ``The tool said: <result>``. With a ``json_schema`` response format
the answer is a JSON object made from the schema.

``POST /v1/responses`` is OpenAI's Responses API, stateless (see ``bench/mock_responses.py``).

``POST /v1/embeddings`` answers deterministic vectors (a hash of each input; ``dimensions``,
default 8; ``encoding_format`` float or base64) and ``POST /v1/completions`` text
completions (stream too), both with usage; the ``latency_ms`` and ``status`` options apply.

``GET /_stats`` returns counters (requests, streams started/completed/disconnected, active
streams, the last request's headers); ``POST /_reset`` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import os
import struct
import time
import uuid
from typing import Any

from aiohttp import web
from mock_responses import events as response_events
from mock_responses import refusal, response_object, sample_json

WORDS = ("mock", "upstream", "says", "hello", "to", "the", "gateway", "and", "its", "clients")

STATS: dict[str, Any] = {}


def reset_stats() -> None:
    STATS.update(requests=0, streams_started=0, streams_completed=0, streams_disconnected=0,
                 active_streams=0, last_headers={}, last_body=None, last_request_at=None)


reset_stats()


def _param(opts: dict[str, Any], headers: Any, key: str, default: Any, cast: Any = float) -> Any:
    if key in opts:
        return cast(opts[key])
    header = headers.get(f"x-mock-{key.replace('_', '-')}")
    if header is not None:
        return cast(header)
    env = os.environ.get(f"MOCK_{key.upper()}")
    return cast(env) if env is not None else default


def _error_body(status: int) -> dict[str, Any]:
    return {"error": {"message": f"mock upstream error {status}", "type": "server_error"
                      if status >= 500 else "invalid_request_error", "param": None,
                      "code": f"mock_{status}"}}


def _chunk(base: bytes, delta: dict[str, Any], finish: str | None) -> bytes:
    choice = json.dumps({"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish})
    return base + b'"choices":[' + choice.encode() + b"]}\n\n"


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call to answer with (see the module docstring), or None."""
    tools = body.get("tools")
    messages = body.get("messages") or [{}]
    if not tools or messages[-1].get("role") == "tool":
        return None
    name = tools[0].get("function", {}).get("name", "tool")
    return {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps({"city": "Paris"})}}


async def chat(request: web.Request) -> web.StreamResponse:
    STATS["requests"] += 1
    STATS["last_request_at"] = time.time()  # wall clock: compared with Redis MONITOR times
    STATS["last_headers"] = {k.lower(): v for k, v in request.headers.items()}
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        return web.json_response(_error_body(400), status=400)
    STATS["last_body"] = body
    opts = body.pop("mock", None) or {}
    hdr = request.headers
    latency = _param(opts, hdr, "latency_ms", 0.0)
    ttft = _param(opts, hdr, "ttft_ms", 0.0)
    tokens = int(_param(opts, hdr, "tokens", 16))
    interval = _param(opts, hdr, "interval_ms", 0.0)
    status = int(_param(opts, hdr, "status", 200))
    fail_after = int(_param(opts, hdr, "fail_after", -1))
    no_done = bool(_param(opts, hdr, "no_done", 0, int))
    not_sse = bool(_param(opts, hdr, "not_sse", 0, int))
    bad_json = bool(_param(opts, hdr, "bad_json", 0, int))
    bad_event_after = int(_param(opts, hdr, "bad_event_after", -1))
    stall_body = _param(opts, hdr, "stall_body_ms", 0.0)
    retry_after = opts.get("retry_after") or hdr.get("x-mock-retry-after")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "stop"
    if isinstance(max_tokens, int) and 0 < max_tokens < tokens:
        tokens, finish = max_tokens, "length"

    if latency:
        await asyncio.sleep(latency / 1000)
    if status != 200:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return web.json_response(_error_body(status), status=status, headers=headers)
    model = body.get("model", "mock")
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    prompt_tokens = int(_param(opts, hdr, "prompt_tokens", sum(
        len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
             "total_tokens": prompt_tokens + tokens}
    words = [WORDS[i % len(WORDS)] + (" " if i < tokens - 1 else "") for i in range(tokens)]
    call = _tool_call(body)
    last = (body.get("messages") or [{}])[-1]
    if body.get("tools") and last.get("role") == "tool":
        words = ["The tool said: ", str(last.get("content"))]
    elif (body.get("response_format") or {}).get("type") == "json_schema":
        answer = json.dumps(sample_json(body["response_format"].get("json_schema", {})
                                        .get("schema")))
        words = [answer[:len(answer) // 2], answer[len(answer) // 2:]]

    if not body.get("stream") and call is not None:
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None, "refusal": None,
                                     "tool_calls": [call]}}],
            "usage": usage})
    if not body.get("stream"):
        if ttft or interval:
            await asyncio.sleep((ttft + interval * max(tokens - 1, 0)) / 1000)
        if bad_json:
            return web.Response(body=b"<html>not json</html>", content_type="application/json")
        if stall_body:
            payload = json.dumps({"id": cid, "object": "chat.completion"}).encode()
            stalled = web.StreamResponse(headers={"Content-Type": "application/json",
                                                  "Content-Length": str(len(payload))})
            await stalled.prepare(request)
            await stalled.write(payload[:len(payload) // 2])
            await asyncio.sleep(stall_body / 1000)
            await stalled.write(payload[len(payload) // 2:])
            return stalled
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "fp_mock_upstream",
            "choices": [{"index": 0, "logprobs": None, "finish_reason": finish,
                         "message": {"role": "assistant", "content": "".join(words),
                                     "refusal": None}}],
            "usage": usage})

    if not_sse:
        return web.json_response({"unexpected": True})
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    STATS["streams_started"] += 1
    STATS["active_streams"] += 1
    head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock_upstream"}
    if include_usage:
        head["usage"] = None
    base = b"data: " + json.dumps(head)[:-1].encode() + b","
    events = [_chunk(base, {"role": "assistant", "content": ""}, None)]
    if call is not None:
        args = call["function"]["arguments"]
        events.append(_chunk(base, {"tool_calls": [{
            "index": 0, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": args[:5]}}]}, None))
        events.append(_chunk(base, {"tool_calls": [{
            "index": 0, "function": {"arguments": args[5:]}}]}, None))
        finish = "tool_calls"
    else:
        events += [_chunk(base, {"content": w}, None) for w in words]
    events.append(_chunk(base, {}, finish))
    if include_usage:
        events.append(b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode()
                      + b"\n\n")
    if not no_done:
        events.append(b"data: [DONE]\n\n")
    if 0 <= bad_event_after < len(events):
        events.insert(bad_event_after, b'data: {"choices":[{\n\n')
    try:
        for i, event in enumerate(events):
            if i == fail_after:
                assert request.transport is not None
                request.transport.abort()  # drop the connection mid-stream
                return resp
            if i == 1 and ttft:
                await asyncio.sleep(ttft / 1000)
            elif i > 1 and interval and i <= tokens:
                await asyncio.sleep(interval / 1000)
            await resp.write(event)
        await resp.write_eof()
        STATS["streams_completed"] += 1
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        STATS["streams_disconnected"] += 1
        raise
    finally:
        STATS["active_streams"] -= 1
    return resp


async def responses(request: web.Request) -> web.StreamResponse:
    STATS["requests"] += 1
    STATS["last_headers"] = {k.lower(): v for k, v in request.headers.items()}
    try:
        body = json.loads(await request.read())
    except ValueError:
        return web.json_response(_error_body(400), status=400)
    STATS["last_body"] = body
    status = int(request.headers.get("x-mock-status", 200))
    if status != 200:
        return web.json_response(_error_body(status), status=status)
    refused = refusal(body)
    if refused is not None:
        return web.json_response(refused[1], status=refused[0])
    response = response_object(body, int(request.headers.get("x-mock-tokens", 8)))
    if not body.get("stream"):
        return web.json_response(response)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    STATS["streams_started"] += 1
    for event in response_events(response):
        await resp.write(event)
    await resp.write_eof()
    STATS["streams_completed"] += 1
    return resp


async def _native_body(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body of an embeddings/completions request (recorded) and its mock options."""
    STATS["requests"] += 1
    STATS["last_headers"] = {k.lower(): v for k, v in request.headers.items()}
    body = json.loads(await request.read())
    STATS["last_body"] = body
    opts = body.pop("mock", None) or {}
    latency = _param(opts, request.headers, "latency_ms", 0.0)
    if latency:
        await asyncio.sleep(latency / 1000)
    return body, opts


def _items(value: Any) -> list[Any]:
    """The separate inputs of ``input``/``prompt``: strings or token arrays."""
    if isinstance(value, list) and value and isinstance(value[0], str | list):
        return value
    return [value if value is not None else ""]


def _tokens_of(items: list[Any]) -> int:
    """About characters / 4 per string (at least 1), a token array by its length."""
    return sum(len(i) if isinstance(i, list) else max(1, len(i) // 4) for i in items)


def _vector(item: Any, dims: int) -> list[float]:
    """A deterministic unit vector of float32 values from a hash of ``item``."""
    digest, seed = b"", json.dumps(item).encode()
    while len(digest) < 4 * dims:
        digest += hashlib.sha256(seed + len(digest).to_bytes(4, "big")).digest()
    raw = [int.from_bytes(digest[4 * i:4 * i + 4], "big") / 2**31 - 1.0 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(v / norm for v in raw))))


async def embeddings(request: web.Request) -> web.Response:
    """OpenAI's embeddings: ``dimensions`` (default 8), ``encoding_format`` float or base64
    (little-endian float32); the ``status`` option answers with that error."""
    body, opts = await _native_body(request)
    status = int(_param(opts, request.headers, "status", 200))
    if status != 200:
        return web.json_response(_error_body(status), status=status)
    items = _items(body.get("input"))
    dims = int(body.get("dimensions") or 8)
    data = []
    for index, item in enumerate(items):
        vector: Any = _vector(item, dims)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = _tokens_of(items)
    return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def completions(request: web.Request) -> web.StreamResponse:
    """OpenAI's legacy text completions, non-stream or SSE (``text_completion`` chunks, the
    usage chunk with ``stream_options.include_usage``, ``[DONE]``)."""
    body, opts = await _native_body(request)
    status = int(_param(opts, request.headers, "status", 200))
    if status != 200:
        return web.json_response(_error_body(status), status=status)
    prompts = _items(body.get("prompt"))
    tokens, finish = int(_param(opts, request.headers, "tokens", 16)), "stop"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and 0 <= limit < tokens:
        tokens, finish = limit, "length"
    words = [WORDS[i % len(WORDS)] + (" " if i < tokens - 1 else "") for i in range(tokens)]
    prompt_tokens = _tokens_of(prompts)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens * len(prompts),
             "total_tokens": prompt_tokens + tokens * len(prompts)}
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": body.get("model"),
            "system_fingerprint": "fp_mock_upstream"}
    if not body.get("stream"):
        return web.json_response({**head, "usage": usage, "choices": [
            {"text": "".join(words), "index": i, "logprobs": None, "finish_reason": finish}
            for i in range(len(prompts))]})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(len(prompts)):
        for text, end in [*((w, None) for w in words), ("", finish)]:
            choice = {"text": text, "index": i, "logprobs": None, "finish_reason": end}
            await resp.write(b"data: " + json.dumps({**head, "choices": [choice]}).encode()
                             + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        await resp.write(b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode()
                         + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": "mock", "object": "model", "created": 0, "owned_by": "mock"}]})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(STATS)


async def reset(request: web.Request) -> web.Response:
    reset_stats()
    return web.json_response({"ok": True})


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/openai/v1/responses", responses)  # Azure OpenAI's v1 API
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop  # optional: faster event loop when installed

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None,
                print=lambda *_: print(f"mock upstream on {args.host}:{args.port}", flush=True),
                backlog=4096)


if __name__ == "__main__":
    main()
