"""The client APIs the pipeline serves, each as a :class:`Surface`: how its body becomes the
pipeline's request, and how an answer becomes its response.

Every API goes through the same pipeline (admission, routing, relay, accounting): a surface
only translates at both ends. A request keeps the client's own body (``native``) next to its
chat translation (``body``); the provider that :meth:`~app.providers.base.Provider.speaks`
the client's API relays ``native`` as is, every other one gets ``body``. The answer says
which API it is in (``ChatResult.api``, ``ChatStream.api``), so a surface translates only
what came back as chat, whichever deployment answered after retries and fallbacks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from app.providers.base import CHAT_COMPLETIONS, MESSAGES, ChatRequest, ChatResult, ChatStream
from app.surfaces.chat_stream import ChatStreamTranslator, iter_translated
from app.surfaces.messages import chat_to_message
from app.surfaces.messages_request import messages_to_chat
from app.surfaces.messages_stream import MessagesStreamTranslator


class Surface:
    """Chat completions: the pipeline's own API, nothing to translate."""

    api = CHAT_COMPLETIONS
    # A cached answer can be replayed as this API's stream (the cache stores chat answers
    # for chat only: a stream request of another API neither reads nor fills the cache).
    replays_streams = True
    # What marks a stream event with content, counted as the token estimate of a stream
    # whose upstream reports no usage.
    content_marker = b'"content":'

    def request(self, body: dict[str, Any], *, request_id: str) -> ChatRequest:
        """The pipeline's request for a client body (raises InvalidRequestError, 400)."""
        return ChatRequest(body, body["model"], request_id)

    def answer(self, request: ChatRequest, result: ChatResult) -> ChatResult:
        """The client's response for a non-stream answer."""
        return result

    def events(self, request: ChatRequest, stream: ChatStream) -> ChatStream:
        """The client's stream for an open upstream stream (the same object: its usage,
        completion and error are what accounting reads)."""
        return stream

    def replayed(self, request: ChatRequest, result: ChatResult) -> ChatResult:
        """The client's response for an answer from the response cache (the stored bytes; an
        API whose answers have an identity of their own gives them a new one)."""
        return result


class TranslatingSurface(Surface, ABC):
    """An API the pipeline serves through chat completions where the upstream does not
    speak it."""

    replays_streams = False

    @abstractmethod
    def translate(self, request: ChatRequest, completion: Any) -> dict[str, Any]:
        """A chat completion (parsed; None when it was not JSON) as this API's answer."""

    @abstractmethod
    def translator(self, request: ChatRequest) -> ChatStreamTranslator:
        """The translator of a chat stream into this API's events, for one request."""

    def answer(self, request: ChatRequest, result: ChatResult) -> ChatResult:
        if result.api == self.api:
            return result
        try:
            completion = orjson.loads(result.body)
        except orjson.JSONDecodeError:
            completion = None  # the translation refuses it as a malformed answer
        body = orjson.dumps(self.translate(request, completion))
        return ChatResult(body, result.usage, result.status, api=self.api)

    def events(self, request: ChatRequest, stream: ChatStream) -> ChatStream:
        if stream.api == self.api:
            return stream
        stream.api = self.api
        return stream.attach(iter_translated(iter(stream), self.translator(request)))


class MessagesSurface(TranslatingSurface):
    """Anthropic's Messages API (``/v1/messages``)."""

    api = MESSAGES

    def request(self, body: dict[str, Any], *, request_id: str) -> ChatRequest:
        chat = messages_to_chat(body)
        return ChatRequest(chat, chat["model"], request_id, api=MESSAGES, native=body)

    @staticmethod
    def _stops(request: ChatRequest) -> list[str]:
        stops = (request.native or {}).get("stop_sequences")
        return stops if isinstance(stops, list) else []

    def translate(self, request: ChatRequest, completion: Any) -> dict[str, Any]:
        return chat_to_message(completion, model=request.model,
                               stop_sequences=self._stops(request))

    def translator(self, request: ChatRequest) -> ChatStreamTranslator:
        return MessagesStreamTranslator(model=request.model, input_tokens=request.prompt_tokens,
                                        stop_sequences=self._stops(request))


CHAT = Surface()
MESSAGES_SURFACE = MessagesSurface()
