"""The stored form of a Responses API answer, and the conversation behind ``previous_response_id``.

A response is stored as one plain JSON-able dict, :class:`StoredResponse`:

``{"id": "resp_...", "previous_response_id": "resp_..." | None,
"input": [this request's input items, normalized, without any earlier conversation],
"response": {the response object as the client received it, with its output items}}``

Only the request's own items are kept, so a long conversation is stored once, not once per
turn; the conversation before a response is found by following ``previous_response_id``
back (:func:`load_history`). A response is stored when the request's ``store`` is not false
(:func:`should_store`), for a stream once it has ended (its final response object is
:attr:`app.surfaces.responses_stream.ResponsesStreamTranslator.response`).

The conversation sent for ``previous_response_id`` is, oldest first, each earlier response's
input items followed by its output items (:func:`history`); their ``instructions`` are not
carried over, as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from app.errors import InvalidRequestError
from app.surfaces.responses_request import input_items

MAX_CHAIN = 1000  # responses followed back at most: a guard against a cycle in the store


class StoredResponse(TypedDict):
    id: str
    previous_response_id: str | None
    input: list[dict[str, Any]]
    response: dict[str, Any]


def should_store(body: dict[str, Any]) -> bool:
    """Whether the client lets the gateway keep this response (``store`` defaults to true)."""
    return body.get("store") is not False


def stored_response(body: dict[str, Any], response: dict[str, Any]) -> StoredResponse:
    """What to store for a request ``body`` (already translated, so valid) and its response."""
    return {"id": response["id"], "previous_response_id": body.get("previous_response_id"),
            "input": input_items(body), "response": response}


def history(chain: Sequence[StoredResponse]) -> list[dict[str, Any]]:
    """The items of earlier responses, oldest first: each one's input, then its output."""
    items: list[dict[str, Any]] = []
    for stored in chain:
        items += stored["input"]
        items += stored["response"].get("output") or []
    return items


def not_found(response_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"Previous response with id '{response_id}' not found.",
                               param="previous_response_id",
                               code="previous_response_not_found")


def load_history(previous_response_id: str,
                 load: Callable[[str], StoredResponse | None]) -> list[dict[str, Any]]:
    """The conversation before a request: follow ``previous_response_id`` back with ``load``
    (the store's lookup by id) and return :func:`history` of what it found.

    Raises InvalidRequestError (400, ``previous_response_not_found``) when a response of the
    chain is missing.
    """
    chain: list[StoredResponse] = []
    next_id: str | None = previous_response_id
    while next_id is not None and len(chain) < MAX_CHAIN:
        stored = load(next_id)
        if stored is None:
            raise not_found(next_id)
        chain.append(stored)
        next_id = stored["previous_response_id"]
    chain.reverse()
    return history(chain)
