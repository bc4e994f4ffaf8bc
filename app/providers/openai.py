"""Any OpenAI-compatible upstream: OpenAI, LM Studio, vLLM, Ollama, llama.cpp server, ...

One ``requests.Session`` per deployment, created once per process, with a connection pool
large enough for every concurrent stream the worker can hold (see
:class:`app.providers.relay.HTTPProvider`). Responses are relayed as bytes: a non-stream body
is returned untouched, stream events are passed through as they arrive.
"""

from __future__ import annotations

import orjson

from app.providers.base import ChatRequest, ChatResult, ChatStream, Usage
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
                usage = payload.get("usage") if isinstance(payload, dict) else None
                if isinstance(usage, dict):
                    observed = Usage.from_openai(usage)
                    if observed is not None:
                        self.stream.usage = observed
                    drop = self.strip_usage and payload.get("choices") == []
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
        parsed, content, status = self.fetch_json(request, self.payload(request))
        if "choices" not in parsed:
            raise invalid_response(self.deployment, "returned no completion")
        return ChatResult(content, Usage.from_openai(parsed.get("usage")), status)

    def stream(self, request: ChatRequest) -> ChatStream:
        strip = self.asks_for_usage(request)
        return self.open_stream(request, self.payload(request),
                                lambda stream: PassThrough(stream, deployment=self.deployment,
                                                           strip_usage=strip))
