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
from app.streaming import DONE_EVENT, SSEBuffer, event_data, iter_events


class PassThrough(StreamTranslator):
    """OpenAI events need no translation: cut at event boundaries, watch usage and [DONE].

    With ``strip_usage`` the final usage-only chunk (which the gateway asked for, not the
    client) is read for accounting and left out of what the client receives.
    """

    def __init__(self, stream: ChatStream, *, strip_usage: bool = False) -> None:
        super().__init__(stream)
        self.buffer = SSEBuffer()
        self.strip_usage = strip_usage

    def feed(self, chunk: bytes) -> bytes:
        block = self.buffer.feed(chunk)
        if block:
            # With include_usage every chunk carries "usage":null; only an object is parsed.
            if b'"usage":{' in block or b'"usage": {' in block:
                _observe_usage(block, self.stream)
                if self.strip_usage:
                    block = _without_usage_chunks(block)
            if block.endswith(DONE_EVENT):
                self.stream.completed = True
        return block


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
                                lambda stream: PassThrough(stream, strip_usage=strip))


def _observe_usage(block: bytes, stream: ChatStream) -> None:
    for event in iter_events(block):
        data = event_data(event)
        if not data or b'"usage"' not in data or data == b"[DONE]":
            continue
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(payload, dict):
            usage = Usage.from_openai(payload.get("usage"))
            if usage is not None:
                stream.usage = usage


def _without_usage_chunks(block: bytes) -> bytes:
    """The block without usage-only chunks (``choices: []`` with a usage object)."""
    kept = []
    for event in iter_events(block):
        data = event_data(event)
        if data and b'"usage"' in data and data != b"[DONE]":
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                payload = None
            if isinstance(payload, dict) and payload.get("choices") == [] and \
                    isinstance(payload.get("usage"), dict):
                continue
        kept.append(event + b"\n\n")
    return b"".join(kept)
