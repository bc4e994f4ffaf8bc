"""Anthropic Messages API payloads shaped like the documented examples, shared by unit and e2e.

Each stream is a list of events as Anthropic sends them (``event: <type>`` + ``data: <json>``).
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "claude-test-upstream"


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn",
            **usage: int) -> dict[str, Any]:
    """A non-stream Messages API response."""
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": MODEL, "content": content, "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 6, **usage}}


def sse(events: list[dict[str, Any]]) -> bytes:
    """Frame events the way the Messages API does."""
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def message_start(input_tokens: int = 25, **usage: int) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant",
        "content": [], "model": MODEL, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage}}}


def text_start(index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "text_delta", "text": text}}


def tool_start(index: int, tool_id: str, name: str) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial}}


def block_stop(index: int = 0) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str = "end_turn", output_tokens: int = 15) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens}}


PING = {"type": "ping"}
MESSAGE_STOP = {"type": "message_stop"}


def error_event(kind: str = "overloaded_error", text: str = "Overloaded") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


def text_stream(*parts: str) -> list[dict[str, Any]]:
    """A complete text answer: the event sequence of Anthropic's streaming example."""
    return [message_start(), text_start(), PING, *(text_delta(p) for p in parts),
            block_stop(), message_delta(), MESSAGE_STOP]


def two_tools_stream() -> list[dict[str, Any]]:
    """Text, then two tool_use blocks whose input_json_deltas interleave."""
    return [
        message_start(),
        text_start(0), text_delta("Let me check both."), block_stop(0),
        tool_start(1, "toolu_01A", "get_weather"),
        tool_start(2, "toolu_01B", "get_time"),
        json_delta(1, '{"location": "San'),
        json_delta(2, '{"timezone": '),
        PING,
        json_delta(1, ' Francisco, CA"'),
        json_delta(2, '"America/Los_Angeles"}'),
        json_delta(1, ', "unit": "celsius"}'),
        block_stop(1), block_stop(2),
        message_delta("tool_use", 89),
        MESSAGE_STOP,
    ]
