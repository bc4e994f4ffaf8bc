"""Chat completion stream -> OpenAI Responses API stream, one event at a time.

The events are the ones the Responses API sends and the ``openai`` SDK's
``responses.stream()`` accumulates, each framed as ``event: <type>`` + ``data: <json>`` and
numbered by ``sequence_number`` from 0:

``response.created`` and ``response.in_progress`` (on the first chat event) -> for a text
segment: ``response.output_item.added`` (a ``message``), ``response.content_part.added``,
``response.output_text.delta`` ..., ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``; for each tool call in turn:
``response.output_item.added`` (a ``function_call``),
``response.function_call_arguments.delta`` ..., ``response.function_call_arguments.done``,
``response.output_item.done`` -> at ``[DONE]``: ``response.completed`` with the full
response and usage (``response.incomplete`` when the answer hit ``max_output_tokens`` or a
content filter).

A chat error event, an invalid event, or a chat stream that ends without ``[DONE]`` ends the
stream with an ``error`` event and then ``response.failed``, whose response holds the output
so far (an unfinished item ``incomplete``). No ``[DONE]`` is sent: the Responses API ends
with its last event. The final response object, as the client saw it, is
:attr:`ResponsesStreamTranslator.response` (what :mod:`app.surfaces.responses_store` keeps).
"""

from __future__ import annotations

from typing import Any

from app.errors import GatewayError
from app.streaming import sse_named_event
from app.surfaces.chat import new_id
from app.surfaces.chat_stream import ChatStreamTranslator, StreamedCall
from app.surfaces.responses import (
    finished,
    function_call_item,
    message_item,
    response_error,
    text_part,
)


class ResponsesStreamTranslator(ChatStreamTranslator):
    """Chat SSE in, Responses SSE out (see the module docstring).

    ``shell`` is :func:`app.surfaces.responses.response_shell` of the request.
    """

    def __init__(self, shell: dict[str, Any]) -> None:
        super().__init__()
        self.response = shell  # replaced by the final response when the stream ends
        self._shell = shell
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # items done, and the open one last
        self._item: dict[str, Any] | None = None  # the open item
        self._texts: list[str] = []

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return sse_named_event(kind, payload)

    def _snapshot(self, **changes: Any) -> dict[str, Any]:
        return {**self._shell, **changes}

    def on_start(self) -> bytes:
        snapshot = self._snapshot()
        return (self._event("response.created", response=snapshot)
                + self._event("response.in_progress", response=snapshot))

    def _add(self, item: dict[str, Any]) -> bytes:
        self._item = item
        self._output.append(item)
        return self._event("response.output_item.added", output_index=len(self._output) - 1,
                           item={**item})

    def _item_done(self, item: dict[str, Any]) -> bytes:
        self._output[-1] = item
        self._item = None
        return self._event("response.output_item.done", output_index=len(self._output) - 1,
                           item=item)

    def _where(self) -> dict[str, Any]:
        assert self._item is not None
        return {"item_id": self._item["id"], "output_index": len(self._output) - 1}

    # --- text ---

    def on_text_start(self) -> bytes:
        self._texts = []
        out = self._add(message_item(new_id("msg_"), None, "in_progress"))
        return out + self._event("response.content_part.added", **self._where(),
                                 content_index=0, part=text_part(""))

    def on_text(self, text: str) -> bytes:
        self._texts.append(text)
        return self._event("response.output_text.delta", **self._where(), content_index=0,
                           delta=text, logprobs=[])

    def on_text_end(self) -> bytes:
        assert self._item is not None
        text = "".join(self._texts)
        where = self._where()
        status = "incomplete" if self.finish_reason == "length" else "completed"
        item = message_item(self._item["id"], text, status)
        return (self._event("response.output_text.done", **where, content_index=0, text=text,
                            logprobs=[])
                + self._event("response.content_part.done", **where, content_index=0,
                              part=text_part(text))
                + self._item_done(item))

    # --- tool calls ---

    def on_tool_start(self, call: StreamedCall) -> bytes:
        return self._add(function_call_item(call.id, call.name, "", "in_progress"))

    def on_tool_delta(self, call: StreamedCall, arguments: str) -> bytes:
        return self._event("response.function_call_arguments.delta", **self._where(),
                           delta=arguments)

    def on_tool_end(self, call: StreamedCall) -> bytes:
        where = self._where()
        item = function_call_item(call.id, call.name, call.arguments, "completed")
        return (self._event("response.function_call_arguments.done", **where,
                            name=call.name, arguments=call.arguments)
                + self._item_done(item))

    # --- end ---

    def on_finish(self) -> bytes:
        self.response = finished(self._shell, self._output, self.finish_reason, self.usage)
        kind = ("response.completed" if self.response["status"] == "completed"
                else "response.incomplete")
        return self._event(kind, response=self.response)

    def on_error(self, err: GatewayError) -> bytes:
        if self._item is not None:  # what the open item holds so far
            item = self._item
            if item["type"] == "message":
                self._output[-1] = message_item(item["id"], "".join(self._texts), "incomplete")
            else:
                self._output[-1] = {**item, "status": "incomplete",
                                    "arguments": self.open_arguments()}
        error = response_error(err)
        self.response = {**finished(self._shell, self._output, None, self.usage),
                         "status": "failed", "error": error}
        return (self._event("error", code=err.code or error["code"], message=err.message,
                            param=err.param)
                + self._event("response.failed", response=self.response))
