"""Chat completions and chat streams shaped like OpenAI's, as the chat pipeline answers."""

from __future__ import annotations

from typing import Any

import orjson

USAGE = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
CACHED_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 8}}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments}}


def completion(content: str | None = "Hello!", *, tool_calls: list[dict[str, Any]] | None = None,
               finish: str = "stop", usage: dict[str, Any] | None = None,
               **choice: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-abc123", "object": "chat.completion", "created": 1700000000,
            "model": "upstream-model",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish, **choice}],
            "usage": USAGE if usage is None else usage}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          **choice: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta or {}, "logprobs": None,
                         "finish_reason": finish, **choice}]}


def usage_chunk(usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-abc123", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "upstream-model", "choices": [], "usage": usage or USAGE}


def tool_delta(index: int, arguments: str, call_id: str | None = None,
               name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        entry.update(id=call_id, type="function")
        entry["function"]["name"] = name
    return chunk({"tool_calls": [entry]})


def sse(*events: dict[str, Any] | str) -> list[bytes]:
    """Frame chunks as the chat pipeline relays them ("DONE" is the final marker)."""
    return [b"data: [DONE]\n\n" if e == "DONE" else b"data: " + orjson.dumps(e) + b"\n\n"
            for e in events]


def text_stream(*parts: str, finish: str = "stop", usage: dict[str, Any] | None = None,
                **choice: Any) -> list[bytes]:
    return sse(chunk({"role": "assistant", "content": ""}),
               *(chunk({"content": p}) for p in parts),
               chunk(finish=finish, **choice), usage_chunk(usage), "DONE")


def tools_stream(text: str | None = None) -> list[bytes]:
    """Optional text, then two parallel tool calls, their arguments in several fragments."""
    head = [chunk({"role": "assistant", "content": ""})]
    if text:
        head.append(chunk({"content": text}))
    return sse(*head,
               tool_delta(0, "", "call_weather1", "get_weather"),
               tool_delta(0, '{"location":'), tool_delta(0, ' "Paris"}'),
               tool_delta(1, "", "call_time2", "get_time"),
               tool_delta(1, '{"tz": "CET"}'),
               chunk(finish="tool_calls"), usage_chunk(), "DONE")


def as_stream(body: dict[str, Any]) -> list[bytes]:
    """The chat stream of a completion: its text and each call's arguments in two pieces."""
    choice = body["choices"][0]
    message = choice["message"]
    chunks = [chunk({"role": "assistant", "content": ""})]
    text = message.get("content") or ""
    if text:
        half = len(text) // 2
        chunks += [chunk({"content": text[:half]}), chunk({"content": text[half:]})]
    for i, tool in enumerate(message.get("tool_calls") or []):
        arguments = tool["function"]["arguments"]
        half = len(arguments) // 2
        chunks += [tool_delta(i, "", tool["id"], tool["function"]["name"]),
                   tool_delta(i, arguments[:half]), tool_delta(i, arguments[half:])]
    extra = {k: v for k, v in choice.items() if k not in ("index", "message", "logprobs",
                                                         "finish_reason")}
    chunks.append(chunk(finish=choice["finish_reason"], **extra))
    if body.get("usage"):
        chunks.append(usage_chunk(body["usage"]))
    return sse(*chunks, "DONE")
