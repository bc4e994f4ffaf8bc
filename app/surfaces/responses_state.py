"""The gateway's side of the Responses API's conversation state (pure functions, no I/O).

The gateway stores every response it serves itself (``store`` not false), whichever
deployment served it, and expands ``previous_response_id`` into the conversation itself, so
a conversation can go on at any deployment of any kind. A deployment that speaks the
Responses API is therefore asked statelessly: the conversation in ``input``,
``store: false``, no ``previous_response_id``; the response it returns then says what the
*gateway* did (``store``, ``previous_response_id`` as the client sent them).

* :func:`item_resources` - a request's input items as stored and listed
  (``GET /v1/responses/{id}/input_items``): each with an ``id`` and a ``status``, message
  content as a list of parts;
* :func:`native_body`, :func:`stateless_items` - the body relayed to a deployment that
  speaks the API. Item ids are left out (an upstream that stores nothing cannot resolve
  them), and so are reasoning items without ``encrypted_content`` (they are only a
  reference to upstream state; ask for ``include: ["reasoning.encrypted_content"]`` to carry
  reasoning across turns);
* :func:`echo`, :func:`echoed` - the client's ``store`` and ``previous_response_id`` on a
  relayed response;
* :func:`replayed` - a response from the response cache as a new response of this request;
* :class:`NativeEvents` - a relayed Responses stream with :func:`echo` applied to the
  response of its lifecycle events (``response.created`` ... ``response.completed``), the
  final response handed to a callback before its event is sent;
* :func:`item_page` - a page of input items (``after``, ``limit``, ``order``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from app.streaming import event_data
from app.surfaces.chat import new_id
from app.surfaces.checks import invalid
from app.surfaces.responses import function_call_id
from app.surfaces.responses_request import input_items
from app.surfaces.responses_store import should_store

# Request fields a cached response takes from the request it answers now.
FRESH = ("id", "created_at", "previous_response_id", "store", "metadata")
IDENTITY = ("user", "safety_identifier", "prompt_cache_key")  # only when the request has them
FINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
# Only the lifecycle events carry a response object: the other events are relayed untouched
# without being parsed (a JSON key cannot occur unescaped inside a string value).
_RESPONSE_KEY = (b'"response":{', b'"response": {')


def _kind(item: dict[str, Any]) -> Any:
    return item.get("type", "message" if "role" in item else None)


def item_resource(item: dict[str, Any]) -> dict[str, Any]:
    """One input item as the API lists it (see the module docstring)."""
    kind = _kind(item)
    out = {**item, "type": kind}
    if kind == "message":
        content = item.get("content")
        assistant = item.get("role") == "assistant"
        if isinstance(content, str):
            content = [{"type": "output_text" if assistant else "input_text", "text": content}]
        if isinstance(content, list):  # (validated by the translation: parts are objects)
            out["content"] = [{"annotations": [], "logprobs": [], **part}
                              if assistant and part.get("type") == "output_text" else part
                              for part in content]
        out.setdefault("id", new_id("msg_"))
    elif kind == "function_call":
        out.setdefault("id", function_call_id(str(item.get("call_id") or "")))
    elif kind == "function_call_output":
        out.setdefault("id", new_id("fco_"))
    if kind != "reasoning":
        out.setdefault("status", "completed")
    return out


def item_resources(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item_resource(item) for item in items]


def stateless_items(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items an upstream that stores nothing can take (see the module docstring)."""
    out = []
    for item in items:
        if _kind(item) == "reasoning":
            if item.get("encrypted_content"):
                out.append(item)
            continue
        out.append({k: v for k, v in item.items() if k not in ("id", "status")})
    return out


def native_body(body: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The client's (valid) ``body`` for a deployment that speaks the Responses API, with
    ``history`` (the conversation of ``previous_response_id``) before its input."""
    out = {k: v for k, v in body.items() if k != "previous_response_id"}
    out["store"] = False
    if history or isinstance(body.get("input"), list):
        out["input"] = stateless_items([*history, *input_items(body)])
    return out


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """What a relayed response says about the state the gateway keeps for ``body``."""
    return {"store": should_store(body), "previous_response_id": body.get("previous_response_id")}


def echoed(response: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {**response, **echo(body)}


def replayed(cached: dict[str, Any], shell: dict[str, Any]) -> dict[str, Any]:
    """A cached response as this request's: ``shell``'s (:func:`response_shell`) new id,
    time and state fields, the cached output, status and usage."""
    out = {**cached, **{name: shell[name] for name in FRESH}}
    for name in IDENTITY:
        if name in shell:
            out[name] = shell[name]
        else:
            out.pop(name, None)
    if out.get("completed_at") is not None:
        out["completed_at"] = shell["created_at"]
    return out


class NativeEvents:
    """A relayed Responses stream's blocks of complete events, with the gateway's state on
    their responses (see the module docstring); ``done(response)`` is called once, with the
    final response, before the block holding its event is returned."""

    def __init__(self, body: dict[str, Any], done: Callable[[dict[str, Any]], None]) -> None:
        self.echo = echo(body)
        self.done: Callable[[dict[str, Any]], None] | None = done

    def feed(self, block: bytes) -> bytes:
        if _RESPONSE_KEY[0] not in block and _RESPONSE_KEY[1] not in block:
            return block
        *events, tail = block.split(b"\n\n")
        return b"".join(self._event(event) + b"\n\n" for event in events) + tail

    def _event(self, event: bytes) -> bytes:
        data = event_data(event)
        if data is None or (_RESPONSE_KEY[0] not in data and _RESPONSE_KEY[1] not in data):
            return event
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event  # the relay ends the stream at a malformed event
        response = payload.get("response") if isinstance(payload, dict) else None
        if not isinstance(response, dict):
            return event
        payload["response"] = response = {**response, **self.echo}
        if payload.get("type") in FINAL_EVENTS and self.done is not None:
            done, self.done = self.done, None
            done(response)
        lines = [line for line in event.split(b"\n") if not line.startswith(b"data:")]
        return b"\n".join([*lines, b"data: " + orjson.dumps(payload)])


def item_page(items: Sequence[dict[str, Any]], *, after: str | None, limit: int,
              order: str) -> dict[str, Any]:
    """A page of a response's input items, in the API's list shape. Raises
    InvalidRequestError (400) when ``after`` is not one of them."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise invalid("after", f"No input item with id '{after}' in this response.")
        start = ids.index(after) + 1
    page = ordered[start:start + limit]
    return {"object": "list", "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": start + limit < len(ordered)}
