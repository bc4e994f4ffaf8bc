"""The built-in mock model: deterministic text, configurable timing, real ``usage``; no network.

A first-class provider (used by ``make run``, the tests and the benchmarks), not a test hack.
Timing is ``latency_ms`` before the response starts, then ``ttft_ms`` until the first token,
then one token every ``interval_ms``. Sleeping uses ``time.sleep``, which the gevent worker
has patched into a cooperative sleep.

Like ``bench/mock_upstream.py``, it answers a request with ``tools`` by calling the first one
(arguments made from its parameters' schema, streamed in two fragments) unless the last
message is a tool result (then ``The tool said: <result>``), and a ``json_schema`` response
format with a JSON object made from the schema, so tool and structured-output flows can be
tried without a real model.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from app.providers.base import (
    COMPLETIONS,
    EMBEDDINGS,
    ChatRequest,
    ChatResult,
    ChatStream,
    Provider,
    Usage,
)
from app.providers.mock_native import TextCompletion, embeddings_answer
from app.settings import MockParams
from app.streaming import DONE_EVENT, sse_event

MOCK_FINGERPRINT = "fp_neuroroute_mock"
WORDS = (
    "NeuroRoute", "relays", "this", "answer", "from", "its", "built-in", "mock", "model,",
    "which", "writes", "deterministic", "text", "so", "that", "tests", "and", "benchmarks",
    "can", "compare", "every", "token", "they", "receive.", "Nothing", "here", "came",
    "from", "a", "real", "language", "model.",
)


def mock_tokens(messages: Any, count: int) -> list[str]:
    """``count`` deterministic tokens; the same prompt always gives the same text."""
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else ""
    start = zlib.crc32(orjson.dumps(last)) % len(WORDS)
    return [WORDS[(start + i) % len(WORDS)] + (" " if i < count - 1 else "")
            for i in range(count)]


def completion_budget(body: dict[str, Any], configured: int) -> tuple[int, str]:
    """How many tokens to produce and the finish reason, honouring max_(completion_)tokens."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < configured:
        return limit, "length"
    return configured, "stop"


def sample_json(schema: Any, root: Any = None) -> Any:
    """A value that satisfies a (simple) JSON schema: ``$ref`` within it, enums, unions,
    objects, arrays and scalars."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return sample_json(target, root)
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample_json(schema[key][0], root)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or isinstance(schema.get("properties"), dict):
        return {name: sample_json(prop, root)
                for name, prop in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample_json(schema.get("items") or {}, root)]
    return {"string": "Paris", "integer": 2100000, "number": 1.5, "boolean": True}.get(
        str(kind))


def scripted_answer(body: dict[str, Any], count: int) -> tuple[list[str], dict[str, Any] | None]:
    """The text pieces and the tool call (or None) the mock answers ``body`` with."""
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages \
        and isinstance(messages[-1], dict) else {}
    tools = [t["function"] for t in body.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if last.get("role") == "tool":
        return [f"The tool said: {last.get('content')}"], None
    if tools:
        arguments = orjson.dumps(sample_json(tools[0].get("parameters")) or {}).decode()
        return [], {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                    "function": {"name": str(tools[0].get("name")), "arguments": arguments}}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        text = orjson.dumps(sample_json(spec.get("schema") if isinstance(spec, dict) else None)
                            ).decode()
        return [text[:len(text) // 2], text[len(text) // 2:]], None
    return mock_tokens(messages, count), None


def _sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000.0)


class MockProvider(Provider):
    kind = "mock"

    @property
    def params(self) -> MockParams:
        return self.deployment.mock or MockParams()

    def speaks(self, api: str) -> bool:
        """Embeddings and text completions, answered in their own API (see mock_native)."""
        return api in (EMBEDDINGS, COMPLETIONS)

    def _text_completion(self, request: ChatRequest) -> TextCompletion:
        body = request.native or request.body
        return TextCompletion(request, self.deployment.model, words=mock_tokens,
                              budget=completion_budget(body, self.params.tokens))

    def _usage(self, request: ChatRequest, completion: int) -> Usage:
        # The mock "upstream" counts prompt tokens the way the gateway estimates them.
        prompt = request.prompt_tokens
        return Usage(prompt, completion, prompt + completion)

    def complete(self, request: ChatRequest) -> ChatResult:
        params = self.params
        if request.api == EMBEDDINGS:
            _sleep_ms(params.latency_ms)
            return embeddings_answer(request, self.deployment.model)
        if request.api == COMPLETIONS:
            completion = self._text_completion(request)
            _sleep_ms(params.latency_ms + params.ttft_ms
                      + params.interval_ms * max(completion.count - 1, 0))
            return completion.answer()
        count, finish = completion_budget(request.body, params.tokens)
        _sleep_ms(params.latency_ms + params.ttft_ms + params.interval_ms * (count - 1))
        usage = self._usage(request, count)
        pieces, call = scripted_answer(request.body, count)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces) or None,
                                   "refusal": None}
        if call is not None:
            message["tool_calls"], finish = [call], "tool_calls"
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.deployment.model,
            "system_fingerprint": MOCK_FINGERPRINT,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": {"prompt_tokens": usage.prompt_tokens,
                      "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.total_tokens},
        }
        return ChatResult(orjson.dumps(body), usage)

    def stream(self, request: ChatRequest) -> ChatStream:
        params = self.params
        _sleep_ms(params.latency_ms)
        if request.api == COMPLETIONS:
            completion = self._text_completion(request)
            stream = ChatStream(api=COMPLETIONS)
            stream.usage = completion.usage
            return stream.attach(completion.events(params, stream, _sleep_ms))
        count, finish = completion_budget(request.body, params.tokens)
        usage = self._usage(request, count)
        stream = ChatStream()
        stream.usage = usage
        return stream.attach(self._events(request, params, count, finish, usage, stream))

    def _events(self, request: ChatRequest, params: MockParams, count: int, finish: str,
                usage: Usage, stream: ChatStream) -> Iterator[bytes]:
        include_usage = request.include_usage
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.deployment.model,
                "system_fingerprint": MOCK_FINGERPRINT}
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return sse_event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                   "finish_reason": finish_reason}]})

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        _sleep_ms(params.ttft_ms)
        pieces, call = scripted_answer(request.body, count)
        for i, token in enumerate(pieces):
            if i:
                _sleep_ms(params.interval_ms)
            yield chunk({"content": token})
        if call is not None:
            arguments, finish = call["function"]["arguments"], "tool_calls"
            yield chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"],
                                                      "arguments": arguments[:1]}}]})
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[1:]}}]})
        yield chunk({}, finish)
        if include_usage:
            yield sse_event({**base, "choices": [], "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens}})
        stream.completed = True
        yield DONE_EVENT
