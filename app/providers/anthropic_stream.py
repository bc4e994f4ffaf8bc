"""Anthropic's Messages API streams: translated into OpenAI chunks for chat clients
(:class:`AnthropicStreamTranslator`), or relayed event for event to Messages API clients
(:class:`MessagesPassThrough`), the usage and the end read on the way in both cases.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from app.errors import GatewayError
from app.providers.anthropic_answers import (
    anthropic_error,
    error_fields,
    finish_reason,
    usage_dict,
    usage_of,
)
from app.providers.base import ChatStream
from app.providers.relay import EventPassThrough, StreamTranslator
from app.providers.upstream import invalid_response
from app.settings import Deployment
from app.streaming import DONE_EVENT, SSEBuffer, event_data, iter_events, sse_event


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class AnthropicStreamTranslator(StreamTranslator):
    """Messages API stream events -> OpenAI ``chat.completion.chunk`` events, one at a time.

    Tool calls get OpenAI indexes 0, 1, ... in the order their blocks start, and keep them for
    every argument delta, whatever Anthropic's block index is and however deltas interleave.
    """

    def __init__(self, stream: ChatStream, *, deployment: Deployment, include_usage: bool,
                 created: int | None = None) -> None:
        super().__init__(stream)
        self.deployment = deployment
        self.include_usage = include_usage
        self.buffer = SSEBuffer()
        self.id = f"msg_{uuid.uuid4().hex}"
        self.model = deployment.model
        self.created = created if created is not None else int(time.time())
        self.usage: dict[str, Any] = {}  # Anthropic's fields, updated as events report them
        self.tool_indexes: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        for event in iter_events(self.buffer.feed(chunk)):
            if self.error is not None:
                break
            data = event_data(event)
            if not data:
                continue  # comments / keep-alives
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.error = invalid_response(self.deployment, "sent an invalid stream event")
                break
            try:
                out += self.translate(payload)
            except (AttributeError, TypeError, ValueError):
                # A malformed event must end this stream with an error, not kill the worker.
                self.error = invalid_response(self.deployment, "sent a malformed stream event")
                break
        return bytes(out)

    def translate(self, event: Any) -> bytes:
        """One Anthropic event -> zero or more OpenAI SSE events (bytes)."""
        kind = event.get("type")
        if kind == "message_start":
            return self._message_start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(_int(event.get("index")), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(_int(event.get("index")), event.get("delta") or {})
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            fields = error_fields(event) or ("api_error", "stream error")
            self.error = anthropic_error(fields[0], fields[1], status=None,
                                         deployment=self.deployment)
        # ping, content_block_stop and event types added later carry nothing to translate
        return b""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the final usage chunk carries it
        return sse_event(chunk)

    def _message_start(self, message: dict[str, Any]) -> bytes:
        if message.get("id"):
            self.id = str(message["id"])
        if message.get("model"):
            self.model = str(message["model"])
        if isinstance(message.get("usage"), dict):
            self.usage.update(message["usage"])
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        tool_index = self.tool_indexes[index] = len(self.tool_indexes)
        return self._chunk({"tool_calls": [{
            "index": tool_index, "id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": ""}}]})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind == "input_json_delta" and delta.get("partial_json") \
                and index in self.tool_indexes:
            return self._chunk({"tool_calls": [{
                "index": self.tool_indexes[index],
                "function": {"arguments": delta["partial_json"]}}]})
        return b""  # thinking, signature and citation deltas have no OpenAI equivalent

    def _message_delta(self, event: dict[str, Any]) -> bytes:
        if isinstance(event.get("usage"), dict):
            # Counts in message_delta are cumulative: they replace, not add to, earlier ones.
            self.usage.update({k: v for k, v in event["usage"].items() if v is not None})
            # Recorded now too: a stream cut after this point still accounts its tokens.
            self.stream.usage = usage_of(usage_dict(self.usage))
        delta = event.get("delta") or {}
        if "stop_reason" not in delta:
            return b""
        return self._chunk({}, finish_reason(delta.get("stop_reason")))

    def _message_stop(self) -> bytes:
        usage = usage_dict(self.usage)
        self.stream.usage = usage_of(usage)
        self.stream.completed = True
        out = b""
        if self.include_usage:
            out = sse_event({"id": self.id, "object": "chat.completion.chunk",
                             "created": self.created, "model": self.model, "choices": [],
                             "usage": usage})
        return out + DONE_EVENT


# --- provider ------------------------------------------------------------------------------


def anthropic_error_event(err: GatewayError) -> bytes:
    """A gateway error as the Messages API's stream ``error`` event."""
    from app.surfaces.messages import anthropic_error as as_anthropic  # same floor: surfaces

    return b"event: error\ndata: " + orjson.dumps(as_anthropic(err)[1]) + b"\n\n"


class MessagesPassThrough(EventPassThrough):
    """Messages API events relayed as they are to a Messages API client: ``message_start``
    and ``message_delta`` give the usage, ``message_stop`` completes the stream, an upstream
    ``error`` event is relayed and ends it with its error recorded; a gateway error after
    the stream began is an Anthropic ``error`` event."""

    def __init__(self, stream: ChatStream, *, deployment: Deployment) -> None:
        super().__init__(stream, deployment=deployment)
        self.usage: dict[str, Any] = {}

    def error_event(self, err: GatewayError) -> bytes:
        # An upstream error event has been relayed as it was: nothing to add.
        return b"" if self.relayed_error else anthropic_error_event(err)

    def read(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            if isinstance(message.get("usage"), dict):
                self.usage.update(message["usage"])
                self.stream.usage = usage_of(usage_dict(self.usage))
        elif kind == "message_delta":
            if isinstance(event.get("usage"), dict):
                self.usage.update({k: v for k, v in event["usage"].items() if v is not None})
                self.stream.usage = usage_of(usage_dict(self.usage))
        elif kind == "message_stop":
            self.stream.completed = True
        elif kind == "error":
            fields = error_fields(event) or ("api_error", "stream error")
            self.error = anthropic_error(fields[0], fields[1], status=None,
                                         deployment=self.deployment)
