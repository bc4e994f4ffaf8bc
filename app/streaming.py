"""Server-sent-event helpers shared by the providers: framing, splitting, error events.

Upstream bytes are relayed as they arrive; they are only cut at event boundaries, so the
gateway can append an error event or drop an event without ever buffering a whole stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from app.errors import GatewayError

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tells nginx not to buffer this response
}
SSE_MIMETYPE = "text/event-stream"


def sse_event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_named_event(name: str, payload: Any) -> bytes:
    """An event with an ``event:`` line, as Anthropic's and the Responses API's streams send."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def sse_error_event(err: GatewayError) -> bytes:
    """The final event of a stream that failed after it began (OpenAI's mid-stream shape)."""
    return sse_event(err.to_dict())


class SSEBuffer:
    """Accumulates upstream bytes and hands back only complete events."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """Add ``chunk``; return the complete events received so far (several, one or none)."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(b"\n\n")
        if end == -1:
            self._pending = data
            return b""
        self._pending = data[end + 2:]
        return data[:end + 2]

    @property
    def pending(self) -> bytes:
        return self._pending


def iter_events(block: bytes) -> Iterator[bytes]:
    """Split a block of complete events into single events (each without the blank line)."""
    for event in block.split(b"\n\n"):
        if event:
            yield event


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event, or None for comments/keep-alives."""
    parts = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not parts:
        return None
    return b"\n".join(parts)
