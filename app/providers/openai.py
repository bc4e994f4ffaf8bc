"""Any OpenAI-compatible upstream: OpenAI, LM Studio, vLLM, Ollama, llama.cpp server, ...

One ``requests.Session`` per deployment, created once per process, with a connection pool
large enough for every concurrent stream the worker can hold (see
:class:`app.providers.relay.HTTPProvider`). Responses are relayed as bytes: a non-stream body
is returned untouched, stream events are passed through as they arrive.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.providers.base import (
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    ChatRequest,
    ChatResult,
    ChatStream,
    Usage,
)
from app.providers.openai_native import (
    PATHS,
    ResponsesPassThrough,
    check_answer,
    native_payload,
    native_usage,
)
from app.providers.relay import HTTPProvider, StreamTranslator
from app.providers.upstream import invalid_response
from app.settings import Deployment
from app.streaming import SSEBuffer, event_data


class PassThrough(StreamTranslator):
    """OpenAI events need no translation: cut at event boundaries, watch usage and [DONE].

    Every event's JSON is checked (parsed, never re-serialized: the upstream's bytes are what
    the client gets). A malformed event ends the stream with an SSE error event instead of
    reaching the client, whose SDK would fail on it. With ``strip_usage`` the final usage-only
    chunk (which the gateway asked for, not the client) is read for accounting and left out of
    what the client receives.
    """

    def __init__(self, stream: ChatStream, *, deployment: Deployment,
                 strip_usage: bool = False) -> None:
        super().__init__(stream)
        self.buffer = SSEBuffer()
        self.deployment = deployment
        self.strip_usage = strip_usage

    def feed(self, chunk: bytes) -> bytes:
        block = self.buffer.feed(chunk)
        if not block:
            return block
        if block.startswith(b"data: ") and block.find(b"\n") == len(block) - 2:
            return self._one(block)  # the common case: one event of one data line
        return self._many(block)

    def _one(self, block: bytes) -> bytes:
        data = block[6:-2]
        if data == b"[DONE]":
            self.stream.completed = True
            return block
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.error = invalid_response(self.deployment, "sent a malformed stream event")
            return b""
        if b'"usage":{' in data or b'"usage": {' in data:
            if self._usage(payload):
                return b""
        return block

    def _usage(self, payload: Any) -> bool:
        """Read an event's usage; True if the event is the gateway's own usage-only chunk."""
        usage = payload.get("usage") if isinstance(payload, dict) else None
        if not isinstance(usage, dict):
            return False
        observed = Usage.from_openai(usage)
        if observed is not None:
            self.stream.usage = observed
        return self.strip_usage and payload.get("choices") == []

    def _many(self, block: bytes) -> bytes:
        events = block.split(b"\n\n")
        kept: list[bytes] | None = None  # only built when an event is dropped
        for index, event in enumerate(events[:-1]):  # the last piece is the empty tail
            data = event[6:] if event.startswith(b"data: ") and b"\n" not in event \
                else event_data(event)
            drop = False
            if data == b"[DONE]":
                self.stream.completed = True
            elif data is not None:  # (None: a comment or keep-alive, relayed as is)
                try:
                    payload = orjson.loads(data)
                except orjson.JSONDecodeError:
                    self.error = invalid_response(self.deployment,
                                                  "sent a malformed stream event")
                    good = events[:index] if kept is None else kept
                    return b"".join(e + b"\n\n" for e in good)
                drop = self._usage(payload)
            if drop:
                if kept is None:
                    kept = events[:index]
            elif kept is not None:
                kept.append(event)
        if kept is None:
            return block
        return b"".join(e + b"\n\n" for e in kept)


class OpenAIProvider(HTTPProvider):
    kind = "openai"

    def endpoint(self) -> str:
        return f"{self.deployment.api_base}/chat/completions"

    def endpoint_for(self, api: str) -> str:
        return f"{self.deployment.api_base}/{PATHS[api]}"

    def speaks(self, api: str) -> bool:
        """Embeddings and text completions always (when the deployment serves them: see
        ``endpoints``), the Responses API when the deployment says so."""
        return api in (EMBEDDINGS, COMPLETIONS) or (api == RESPONSES
                                                    and self.deployment.responses_api)

    def asks_for_usage(self, request: ChatRequest) -> bool:
        """Whether the gateway adds ``include_usage`` the client did not ask for (for exact
        accounting); deployments whose server rejects ``stream_options`` turn it off."""
        return request.stream and self.deployment.stream_usage and not request.include_usage

    def payload(self, request: ChatRequest) -> bytes:
        """The upstream body: the client's, with the deployment's model name."""
        body = request.body
        if body.get("model") != self.deployment.model:
            body = {**body, "model": self.deployment.model}
        if self.asks_for_usage(request):
            options = body.get("stream_options")
            body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}),
                                               "include_usage": True}}
        return orjson.dumps(body)

    def complete(self, request: ChatRequest) -> ChatResult:
        if request.native is not None and self.speaks(request.api):
            return self._complete_native(request)
        parsed, content, status = self.fetch_json(request, self.payload(request))
        if "choices" not in parsed:
            raise invalid_response(self.deployment, "returned no completion")
        return ChatResult(content, Usage.from_openai(parsed.get("usage")), status)

    def stream(self, request: ChatRequest) -> ChatStream:
        if request.native is not None and self.speaks(request.api):
            return self._stream_native(request)
        strip = self.asks_for_usage(request)
        return self.open_stream(request, self.payload(request),
                                lambda stream: PassThrough(stream, deployment=self.deployment,
                                                           strip_usage=strip))

    def _complete_native(self, request: ChatRequest) -> ChatResult:
        parsed, content, status = self.fetch_json(
            request, native_payload(request.native, self.deployment))
        check_answer(request.api, parsed, self.deployment)
        return ChatResult(content, native_usage(request.api, parsed.get("usage")), status,
                          api=request.api)

    def _stream_native(self, request: ChatRequest) -> ChatStream:
        if request.api == RESPONSES:
            payload = native_payload(request.native, self.deployment)
            stream = self.open_stream(request, payload, lambda stream: ResponsesPassThrough(
                stream, deployment=self.deployment))
        else:  # text completions stream chat's way: data lines, usage chunk, [DONE]
            strip = self.asks_for_usage(request)
            payload = native_payload(request.native, self.deployment, include_usage=strip)
            stream = self.open_stream(request, payload, lambda stream: PassThrough(
                stream, deployment=self.deployment, strip_usage=strip))
        stream.api = request.api
        return stream
