"""A stand-in for the wiring the surfaces are made for, without HTTP or a database.

It does what the gateway's ``/v1/messages`` and ``/v1/responses`` views do with the
translation layer (their real wiring: :mod:`app.chat.surfaces`, :mod:`app.chat.responses`):
translate the SDK's request into a chat body, hand it to a chat upstream (a function of the
chat body, or a real provider), and translate the chat answer or stream back; errors are
rendered the surface's way. Tests put the real SDKs in front of it
(:mod:`tests.unit.surfaces.sdk`), so a request goes SDK -> translation -> chat -> translation
-> SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from pydantic import BaseModel

from app.errors import GatewayError
from app.providers.base import ChatRequest, Provider
from app.schemas.chat import ChatCompletionRequestSchema
from app.surfaces.chat_stream import iter_translated
from app.surfaces.messages import anthropic_error, chat_to_message
from app.surfaces.messages_request import messages_to_chat
from app.surfaces.messages_stream import MessagesStreamTranslator
from app.surfaces.responses import chat_to_response, response_shell
from app.surfaces.responses_request import responses_to_chat
from app.surfaces.responses_store import (
    StoredResponse,
    load_history,
    should_store,
    stored_response,
)
from app.surfaces.responses_stream import ResponsesStreamTranslator
from app.tokens import estimate_message_tokens
from tests.openai_spec import assert_valid
from tests.unit.surfaces.chat_fixtures import as_stream
from tests.unit.surfaces.sdk import Answer, json_answer, sse_answer

# Each scenario of the SDK tests runs both ways.
MODES = pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])


class City(BaseModel):
    """A structured-output format: both SDKs turn it into a JSON schema and parse it back."""

    name: str
    population: int


CITY_ANSWER = '{"name": "Paris", "population": 2100000}'

# A chat upstream: the chat body in, a chat completion out (raise GatewayError to fail).
ChatUpstream = Callable[[dict[str, Any]], dict[str, Any]]


def assert_routable(chat: dict[str, Any]) -> None:
    """A translated body is one OpenAI's schema and the chat pipeline's schema accept."""
    assert_valid(chat, "CreateChatCompletionRequest")
    assert ChatCompletionRequestSchema().validate(chat) == {}


def provider_upstream(provider: Provider) -> Callable[[dict[str, Any]], Any]:
    """A real provider as the chat upstream: a completion, or its stream's bytes."""
    def answer(chat: dict[str, Any]) -> Any:
        request = ChatRequest(chat, chat["model"], "req-test")
        if request.stream:
            return list(provider.stream(request))
        return json.loads(provider.complete(request).body)
    return answer


class SurfaceGateway:
    """Both surfaces over one chat upstream; ``chats`` records what the upstream was sent."""

    @classmethod
    def scripted(cls, *answers: dict[str, Any] | GatewayError) -> SurfaceGateway:
        """A gateway whose chat upstream gives these answers (or raises these) in turn."""
        queue = list(answers)

        def upstream(chat: dict[str, Any]) -> dict[str, Any]:
            answer = queue.pop(0)
            if isinstance(answer, GatewayError):
                raise answer
            return answer

        return cls(upstream)

    def __init__(self, upstream: Callable[[dict[str, Any]], Any]) -> None:
        self.upstream = upstream
        self.chats: list[dict[str, Any]] = []
        self.stored: dict[str, StoredResponse] = {}

    def _chat(self, chat: dict[str, Any]) -> Iterable[bytes] | dict[str, Any]:
        assert_routable(chat)
        self.chats.append(chat)
        answer = self.upstream(chat)
        if chat.get("stream") and isinstance(answer, dict):
            return as_stream(answer)
        return answer

    def messages(self, body: dict[str, Any]) -> Answer:
        try:
            chat = messages_to_chat(body)
            answer = self._chat(chat)
            stops = body.get("stop_sequences") or ()
            if isinstance(answer, dict):
                return json_answer(chat_to_message(answer, model=body["model"],
                                                   stop_sequences=stops))
        except GatewayError as err:
            status, payload = anthropic_error(err)
            return json_answer(payload, status)
        translator = MessagesStreamTranslator(
            model=body["model"], input_tokens=estimate_message_tokens(chat["messages"]),
            stop_sequences=stops)
        return sse_answer(b"".join(iter_translated(answer, translator)))

    def responses(self, body: dict[str, Any]) -> Answer:
        try:
            previous = body.get("previous_response_id")
            history = load_history(previous, self.stored.get) if previous else []
            chat = responses_to_chat(body, history=history)
            answer = self._chat(chat)
            shell = response_shell(body, model=body["model"])
            if isinstance(answer, dict):
                response = chat_to_response(answer, shell)
                self._store(body, response)
                return json_answer(response)
        except GatewayError as err:
            return json_answer(err.to_dict(), err.status)
        translator = ResponsesStreamTranslator(shell)
        events = b"".join(iter_translated(answer, translator))
        self._store(body, translator.response)
        return sse_answer(events)

    def _store(self, body: dict[str, Any], response: dict[str, Any]) -> None:
        if should_store(body):
            self.stored[response["id"]] = json.loads(json.dumps(
                stored_response(body, response)))
