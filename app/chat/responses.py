"""The OpenAI Responses API (``/v1/responses``): its surface of the chat pipeline, and its
stored responses.

``POST /v1/responses`` runs through :class:`~app.chat.service.ChatService` like every API
(keys, limits, budgets, cache, routing, retries, usage) as a :class:`ResponsesSurface`, one
per request: it knows who asks (the stored conversation is theirs) and keeps what it
translated for the answer. A deployment that speaks the Responses API gets the client's body
relayed statelessly (:func:`~app.surfaces.responses_state.native_body`); every other one gets
the chat translation, and its answer or stream is translated back.

State belongs to the gateway: every response the client lets it keep (``store`` not false)
is stored whichever deployment served it (:mod:`app.chat.responses_store`), and
``previous_response_id`` is expanded by the gateway, so a conversation can continue at any
deployment. A stored response is visible to the key that created it and, when that key was
in a team, to that team's keys (:class:`~app.db.responses.Owner`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from app.auth.service import Principal
from app.chat.responses_store import ResponseStore
from app.chat.surfaces import TranslatingSurface
from app.db.responses import Owner
from app.errors import GatewayError
from app.providers.base import RESPONSES, ChatRequest, ChatResult, ChatStream
from app.surfaces.chat_stream import ChatStreamTranslator
from app.surfaces.responses import chat_to_response, response_shell
from app.surfaces.responses_request import responses_to_chat
from app.surfaces.responses_state import (
    NativeEvents,
    echoed,
    item_page,
    item_resources,
    native_body,
    replayed,
)
from app.surfaces.responses_store import StoredResponse, should_store, stored_response
from app.surfaces.responses_stream import ResponsesStreamTranslator

Keep = Callable[[dict[str, Any]], None]


def owner_of(principal: Principal) -> Owner:
    return Owner(principal.key_id, principal.team_id)


class KeptTranslator(ResponsesStreamTranslator):
    """The chat-to-Responses stream translation that hands the final response (completed,
    incomplete or failed) to ``keep`` before its event is sent."""

    def __init__(self, shell: dict[str, Any], keep: Keep) -> None:
        super().__init__(shell)
        self._keep = keep

    def on_finish(self) -> bytes:
        out = super().on_finish()
        self._keep(self.response)
        return out

    def on_error(self, err: GatewayError) -> bytes:
        out = super().on_error(err)
        self._keep(self.response)
        return out


def _relayed(blocks: Iterator[bytes], events: NativeEvents) -> Iterator[bytes]:
    """A relayed Responses stream with the gateway's state; closing it closes the upstream."""
    try:
        for block in blocks:
            yield events.feed(block)
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()


class ResponsesSurface(TranslatingSurface):
    """The Responses API for one request of ``owner`` (see the module docstring)."""

    api = RESPONSES

    def __init__(self, store: ResponseStore, owner: Owner) -> None:
        self.store = store
        self.owner = owner
        self._body: dict[str, Any] = {}
        self._shell: dict[str, Any] = {}
        self._chain: list[str] = []  # the stored responses this one continues

    def request(self, body: dict[str, Any], *, request_id: str) -> ChatRequest:
        """Raises InvalidRequestError (400) for what cannot be translated (naming the field)
        and for a ``previous_response_id`` the caller has no stored response of."""
        previous = body.get("previous_response_id")
        history: list[dict[str, Any]] = []
        if isinstance(previous, str):  # anything else: the translation refuses it
            history, self._chain = self.store.history(self.owner, previous)
        chat = responses_to_chat(body, history=history)
        self._body = body
        self._shell = response_shell(body, model=chat["model"])
        return ChatRequest(chat, chat["model"], request_id, api=RESPONSES,
                           native=native_body(body, history))

    def answer(self, request: ChatRequest, result: ChatResult) -> ChatResult:
        if result.api != RESPONSES:
            return super().answer(request, result)  # translated (and kept) by translate()
        # relayed as is: only the state fields are the gateway's
        response = echoed(orjson.loads(result.body), self._body)
        self.keep(response)
        return ChatResult(orjson.dumps(response), result.usage, result.status, api=RESPONSES)

    def translate(self, request: ChatRequest, completion: Any) -> dict[str, Any]:
        response = chat_to_response(completion, self._shell)
        self.keep(response)
        return response

    def replayed(self, request: ChatRequest, result: ChatResult) -> ChatResult:
        """A cached response, as a new response of this request (stored as such)."""
        response = replayed(orjson.loads(result.body), self._shell)
        self.keep(response)
        return ChatResult(orjson.dumps(response), result.usage, result.status, api=RESPONSES)

    def events(self, request: ChatRequest, stream: ChatStream) -> ChatStream:
        if stream.api == RESPONSES:
            return stream.attach(_relayed(iter(stream), NativeEvents(self._body, self.keep)))
        return super().events(request, stream)

    def translator(self, request: ChatRequest) -> ChatStreamTranslator:
        return KeptTranslator(self._shell, self.keep)

    def keep(self, response: dict[str, Any]) -> None:
        """Store ``response`` unless the client said ``store: false``."""
        body = self._body
        if should_store(body):
            stored = stored_response(body, response)
            stored["input"] = item_resources(stored["input"])
            self.store.save(self.owner, stored, model=self._shell.get("model"),
                            chain=self._chain)


class ResponsesService:
    """The Responses API's entry points (the views call these)."""

    def __init__(self, *, store: ResponseStore) -> None:
        self.store = store

    def surface(self, principal: Principal) -> ResponsesSurface:
        """The surface to serve one ``POST /v1/responses`` of ``principal`` with."""
        return ResponsesSurface(self.store, owner_of(principal))

    def get(self, principal: Principal, response_id: str) -> dict[str, Any]:
        """The stored response object (404 unless the principal may see it)."""
        return self._stored(principal, response_id)["response"]

    def input_items(self, principal: Principal, response_id: str, *, after: str | None = None,
                    limit: int = 20, order: str = "desc") -> dict[str, Any]:
        """A page of the items the response's request sent (404, or 400 for ``after``)."""
        return item_page(self._stored(principal, response_id)["input"], after=after,
                         limit=limit, order=order)

    def delete(self, principal: Principal, response_id: str) -> dict[str, Any]:
        """Delete a stored response (404 unless the principal may see it)."""
        self.store.delete(owner_of(principal), response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    def _stored(self, principal: Principal, response_id: str) -> StoredResponse:
        return self.store.get(owner_of(principal), response_id)
