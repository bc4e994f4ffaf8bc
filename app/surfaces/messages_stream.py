"""Chat completion stream -> Anthropic Messages API stream, one event at a time.

The events are the ones Anthropic sends and the ``anthropic`` SDK accumulates, each framed
as ``event: <type>`` + ``data: <json>``:

``message_start`` (once, on the first chat event; its ``input_tokens`` is the pipeline's
estimate, since chat streams report usage only at the end) -> for each text segment and
then each tool call, in turn and never overlapping: ``content_block_start``,
``content_block_delta`` (``text_delta`` / ``input_json_delta`` with the argument fragments
as they arrive), ``content_block_stop`` -> at ``[DONE]``: ``message_delta`` with the stop
reason and the real usage (its counts replace the estimate) -> ``message_stop``.

A chat error event, an invalid event, or a chat stream that ends without ``[DONE]`` ends the
stream with Anthropic's ``event: error`` carrying the error object of
:func:`app.surfaces.messages.anthropic_error`. No ``ping`` events are sent: keep-alives are
the relay's business, not the translation's. An upstream that does not report usage in its
stream leaves ``output_tokens`` at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.errors import GatewayError
from app.streaming import sse_named_event
from app.surfaces.chat import new_id
from app.surfaces.chat_stream import ChatStreamTranslator, StreamedCall
from app.surfaces.messages import anthropic_error, anthropic_usage, stop_reason, tool_use_id


def _event(payload: dict[str, Any]) -> bytes:
    return sse_named_event(payload["type"], payload)


class MessagesStreamTranslator(ChatStreamTranslator):
    """Chat SSE in, Anthropic SSE out (see the module docstring).

    ``model`` is the name the client asked for, ``input_tokens`` the pipeline's prompt
    estimate for ``message_start``, ``stop_sequences`` the request's (to report which one
    matched).
    """

    def __init__(self, *, model: str, input_tokens: int = 0,
                 stop_sequences: Sequence[str] = (), message_id: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_tokens = input_tokens
        self.stop_sequences = tuple(stop_sequences)
        self.id = message_id or new_id("msg_")
        self._index = -1  # the open content block's index
        self._tool_calls = False

    def on_start(self) -> bytes:
        return _event({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": anthropic_usage(None, input_estimate=self.input_tokens)}})

    def _block_start(self, block: dict[str, Any]) -> bytes:
        self._index += 1
        return _event({"type": "content_block_start", "index": self._index,
                       "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": self._index, "delta": delta})

    def _block_stop(self) -> bytes:
        return _event({"type": "content_block_stop", "index": self._index})

    def on_text_start(self) -> bytes:
        return self._block_start({"type": "text", "text": ""})

    def on_text(self, text: str) -> bytes:
        return self._delta({"type": "text_delta", "text": text})

    def on_text_end(self) -> bytes:
        return self._block_stop()

    def on_tool_start(self, call: StreamedCall) -> bytes:
        self._tool_calls = True
        return self._block_start({"type": "tool_use", "id": tool_use_id(call.id),
                                  "name": call.name, "input": {}})

    def on_tool_delta(self, call: StreamedCall, arguments: str) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": arguments})

    def on_tool_end(self, call: StreamedCall) -> bytes:
        return self._block_stop()

    def on_finish(self) -> bytes:
        reason, sequence = stop_reason(self.finish_reason, tool_calls=self._tool_calls,
                                       stop_string=self.stop_string,
                                       stop_sequences=self.stop_sequences)
        usage = anthropic_usage(self.usage, input_estimate=self.input_tokens)
        return (_event({"type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": sequence},
                        "usage": usage})
                + _event({"type": "message_stop"}))

    def on_error(self, err: GatewayError) -> bytes:
        return _event(anthropic_error(err)[1])
