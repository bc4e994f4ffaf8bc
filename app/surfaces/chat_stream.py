"""Reading the chat pipeline's streams: the base of both surfaces' stream translators.

:class:`ChatStreamTranslator` parses chat SSE bytes (or already parsed chunks) one event at
a time and calls its subclass back with *segments* that never overlap: a text segment, or
one tool call after another. Parallel tool calls whose argument fragments interleave are
put in sequence: a later call's fragments wait (only that call's) until the open call's
arguments are a complete JSON object, or until the answer finishes. Nothing else is held
back.

Only choice 0 is read. Refusal deltas are read as text (see :mod:`app.surfaces.chat`).
Reasoning text some OpenAI-compatible servers stream (``reasoning_content``) has no place
in either surface's answer and is not read. A chat error event, an invalid event, or a
stream that ends without ``[DONE]`` ends the surface's stream with its error, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.errors import GatewayError, UpstreamError
from app.streaming import SSEBuffer, event_data, iter_events
from app.surfaces.chat import TokenCounts, int_or_zero, new_id, str_or_none


@dataclass(slots=True)
class StreamedCall:
    """A tool call being assembled from a stream's fragments."""

    index: int
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    state: str = "new"  # new -> (pending ->) open -> closed

    @property
    def arguments(self) -> str:
        return "".join(self.parts)

    def complete(self) -> bool:
        """Whether the arguments so far are a whole JSON object (nothing can follow)."""
        try:
            return isinstance(orjson.loads(self.arguments), dict)
        except orjson.JSONDecodeError:
            return False


def _first_choice(choices: Any) -> dict[str, Any] | None:
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and int_or_zero(choice.get("index")) == 0:
                return choice
    return None


class RelayedStreamError(GatewayError):
    """The OpenAI-shaped error event a chat stream ended with; its HTTP status is unknown."""

    def __init__(self, fields: dict[str, Any]) -> None:
        code, param = fields.get("code"), fields.get("param")
        super().__init__(str(fields.get("message") or "The upstream stream failed."),
                         code=code if isinstance(code, str) else None,
                         param=param if isinstance(param, str) else None)
        kind = fields.get("type")
        self.type = kind if isinstance(kind, str) else "server_error"


def truncated_error() -> GatewayError:
    return UpstreamError("The upstream ended the stream before it was complete.",
                         code="upstream_stream_truncated")


class ChatStreamTranslator(ABC):
    """Chat completion stream in, a surface's stream out, one event at a time.

    Feed it the chat SSE bytes as they arrive (:meth:`feed`) or parsed chunks
    (:meth:`feed_chunk`), and call :meth:`close` when the chat stream ends: a stream that
    ended without ``[DONE]`` (or an error event) is ended with the surface's error. Each call
    returns the bytes to send to the client now (possibly none). The subclass says what each
    step looks like in its surface through the ``on_*`` hooks, each returning bytes.
    """

    def __init__(self) -> None:
        self._buffer = SSEBuffer()
        self._started = False
        self._segment: str | None = None  # None, "text" or "tool"
        self._open: StreamedCall | None = None
        self._calls: dict[int, StreamedCall] = {}
        self.finish_reason: str | None = None
        self.stop_string: str | None = None
        self.usage: TokenCounts | None = None
        self.finished = False  # the surface stream has ended (completed or failed)

    # --- input ---

    def feed(self, data: bytes) -> bytes:
        """Chat SSE bytes (any cut) -> the surface's events for every complete chat event."""
        out = bytearray()
        for event in iter_events(self._buffer.feed(data)):
            if self.finished:
                break
            payload = event_data(event)
            if payload is None:
                continue  # comments and keep-alives
            if payload == b"[DONE]":
                out += self._done()
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                out += self.fail(UpstreamError("The upstream sent an invalid stream event.",
                                               code="invalid_upstream_response"))
                continue
            out += self.feed_chunk(chunk)
        return bytes(out)

    def feed_chunk(self, chunk: Any) -> bytes:
        """One parsed chat event (a ``chat.completion.chunk`` or an error event)."""
        if self.finished:
            return b""
        if not isinstance(chunk, dict):
            return self.fail(UpstreamError("The upstream sent a malformed stream event.",
                                           code="invalid_upstream_response"))
        if isinstance(chunk.get("error"), dict):
            return self.fail(RelayedStreamError(chunk["error"]))
        out = bytearray()
        if not self._started:
            self._started = True
            out += self.on_start()
        usage = TokenCounts.from_chat(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choice = _first_choice(chunk.get("choices"))
        if choice is None or self.finish_reason is not None:
            return bytes(out)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("content", "refusal"):
                text = delta.get(name)
                if isinstance(text, str) and text:
                    out += self._text(text)
            for entry in delta.get("tool_calls") or []:
                if isinstance(entry, dict):
                    out += self._tool_fragment(entry)
        if self.finished:
            return bytes(out)
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
            self.stop_string = str_or_none(choice.get("stop_reason"))
            out += self._end_segments()
        return bytes(out)

    def close(self) -> bytes:
        """The chat stream has ended: nothing, or the surface's error if it was cut short."""
        return b"" if self.finished else self.fail(truncated_error())

    def fail(self, err: GatewayError) -> bytes:
        """End the surface stream with ``err`` (also for the pipeline's own failures)."""
        if self.finished:
            return b""
        self.finished = True
        return self.on_error(err)

    def open_arguments(self) -> str:
        """The arguments so far of the tool call being streamed ("" when none is)."""
        return self._open.arguments if self._open is not None else ""

    # --- segments ---

    def _text(self, text: str) -> bytes:
        out = bytearray()
        if self._segment != "text":
            out += self._end_open()
            self._segment = "text"
            out += self.on_text_start()
        return bytes(out + self.on_text(text))

    def _tool_fragment(self, entry: dict[str, Any]) -> bytes:
        index = entry.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            # Servers that leave the index out send one call after another.
            index = len(self._calls) if entry.get("id") or not self._calls else max(self._calls)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = StreamedCall(index)
        function = entry.get("function")
        if not isinstance(function, dict):
            function = {}
        if isinstance(entry.get("id"), str) and not call.id:
            call.id = entry["id"]
        if isinstance(function.get("name"), str) and not call.name:
            call.name = function["name"]
        arguments = function.get("arguments")
        arguments = arguments if isinstance(arguments, str) else ""
        if call.state == "closed":
            if not arguments.strip():
                return b""
            return self.fail(UpstreamError("The upstream sent tool call arguments out of order.",
                                           code="invalid_upstream_response"))
        if arguments:
            call.parts.append(arguments)
        if call.state == "open":
            out = self.on_tool_delta(call, arguments) if arguments else b""
            return out + self._advance()
        if not call.name:
            return b""  # its block cannot start before its name is known
        call.state = "pending"
        if self._open is None:  # nothing or text is open: the first call waiting starts now
            return self._end_open() + self._start(self._waiting()[0]) + self._advance()
        return self._advance()

    def _start(self, call: StreamedCall) -> bytes:
        call.state = "open"
        call.id = call.id or new_id("call_")
        self._open, self._segment = call, "tool"
        out = self.on_tool_start(call)
        return out + (self.on_tool_delta(call, call.arguments) if call.parts else b"")

    def _advance(self) -> bytes:
        """Start waiting calls in order while the open one's arguments are complete."""
        out = bytearray()
        while self._open is not None:
            waiting = self._waiting()  # checked first: parsing the arguments costs more
            if not waiting or not self._open.complete():
                break
            out += self._end_open() + self._start(waiting[0])
        return bytes(out)

    def _waiting(self) -> list[StreamedCall]:
        return [self._calls[i] for i in sorted(self._calls) if self._calls[i].state == "pending"]

    def _end_open(self) -> bytes:
        segment, self._segment = self._segment, None
        if segment == "text":
            return self.on_text_end()
        if segment == "tool" and self._open is not None:
            call, self._open = self._open, None
            call.state = "closed"
            return self.on_tool_end(call)
        return b""

    def _end_segments(self) -> bytes:
        """End the open segment, then give every call still waiting its turn."""
        out = bytearray(self._end_open())
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            if call.state in ("new", "pending"):
                out += self._start(call) + self._end_open()
        return bytes(out)

    def _done(self) -> bytes:
        if not self._started:
            self._started = True
            out = self.on_start()
        else:
            out = b""
        out += self._end_segments()
        self.finished = True
        return out + self.on_finish()

    # --- the surface's shape ---

    @abstractmethod
    def on_start(self) -> bytes:
        """The first chat event arrived."""

    @abstractmethod
    def on_text_start(self) -> bytes: ...

    @abstractmethod
    def on_text(self, text: str) -> bytes: ...

    @abstractmethod
    def on_text_end(self) -> bytes: ...

    @abstractmethod
    def on_tool_start(self, call: StreamedCall) -> bytes: ...

    @abstractmethod
    def on_tool_delta(self, call: StreamedCall, arguments: str) -> bytes: ...

    @abstractmethod
    def on_tool_end(self, call: StreamedCall) -> bytes: ...

    @abstractmethod
    def on_finish(self) -> bytes:
        """``[DONE]``: ``finish_reason``, ``stop_string`` and ``usage`` are final."""

    @abstractmethod
    def on_error(self, err: GatewayError) -> bytes:
        """The stream failed: the surface's error event(s); nothing follows."""


def iter_translated(chunks: Iterable[bytes], translator: ChatStreamTranslator
                    ) -> Iterator[bytes]:
    """The surface's stream for a chat stream: what :meth:`feed` returns, then the end. A
    GatewayError raised while reading ends it with the surface's error event; closing it
    closes ``chunks`` at once (the upstream is released when the client goes away)."""
    try:
        for chunk in chunks:
            out = translator.feed(chunk)
            if out:
                yield out
            if translator.finished:
                return
        out = translator.close()
        if out:
            yield out
    except GatewayError as err:
        yield translator.fail(err)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
