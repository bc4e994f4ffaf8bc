"""The gateway's side of Responses state, pure: items as listed and as replayed statelessly,
the echo on relayed streams, cached answers made new, pages of items."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidRequestError
from app.surfaces.responses import response_shell
from app.surfaces.responses_state import (
    NativeEvents,
    item_page,
    item_resources,
    native_body,
    replayed,
)


def test_a_string_input_is_relayed_as_is_without_history() -> None:
    body = {"model": "m", "input": "Hi", "store": True, "previous_response_id": None}
    assert native_body(body, []) == {"model": "m", "input": "Hi", "store": False}


def test_item_ids_and_bare_reasoning_never_reach_a_stateless_upstream() -> None:
    history = [{"type": "message", "id": "msg_1", "status": "completed", "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}]},
               {"type": "reasoning", "id": "rs_1", "summary": []}]
    body = {"model": "m", "input": [{"type": "function_call", "id": "fc_1", "call_id": "c",
                                     "name": "f", "arguments": "{}", "status": "completed"}]}
    assert native_body(body, history)["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]


def test_listed_items_keep_their_own_ids() -> None:
    listed = item_resources([{"type": "function_call", "id": "fc_mine", "call_id": "call_9",
                              "name": "f", "arguments": "{}"},
                             {"type": "function_call", "call_id": "call_9x", "name": "f",
                              "arguments": "{}"},
                             {"type": "reasoning", "id": "rs_1", "summary": []}])
    assert [i["id"] for i in listed] == ["fc_mine", "fc_9x", "rs_1"]
    assert "status" not in listed[2]


def stream(*payloads: dict[str, Any], named: bool = True) -> bytes:
    return b"".join((f"event: {p['type']}\n".encode() if named else b"")
                    + b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


@pytest.mark.parametrize("named", [True, False])
def test_relayed_lifecycle_events_carry_the_gateways_state(named: bool) -> None:
    finals: list[dict[str, Any]] = []
    events = NativeEvents({"store": True, "previous_response_id": "resp_0"}, finals.append)
    response = {"id": "resp_1", "store": False, "previous_response_id": None}
    delta = stream({"type": "response.output_text.delta", "delta": '"response": {'},
                   named=named)
    assert events.feed(delta) == delta  # not a lifecycle event: untouched bytes
    block = stream({"type": "response.created", "response": response},
                   {"type": "response.completed", "response": response}, named=named)
    out = events.feed(block + b"event: ping")  # a partial event after them stays as it was
    assert out.endswith(b"\n\nevent: ping")
    parsed = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    state = {"store": True, "previous_response_id": "resp_0"}
    assert [p["response"] for p in parsed] == [{**response, **state}] * 2
    assert out.startswith(b"event: response.created\n") is named
    assert finals == [{**response, **state}]
    events.feed(stream({"type": "response.completed", "response": response}))
    assert len(finals) == 1  # once


def test_a_cached_response_becomes_this_requests() -> None:
    cached = {**response_shell({"user": "u1", "metadata": {"a": "1"}}, model="m"),
              "status": "completed", "completed_at": 1, "output": [{"type": "message"}]}
    shell = response_shell({"previous_response_id": "resp_0", "store": False}, model="m")
    again = replayed(cached, shell)
    assert {k: again[k] for k in ("id", "created_at", "previous_response_id", "store",
                                  "metadata")} == {
        "id": shell["id"], "created_at": shell["created_at"], "previous_response_id": "resp_0",
        "store": False, "metadata": {}}
    assert "user" not in again and again["output"] == cached["output"]
    assert again["completed_at"] == shell["created_at"]


def test_item_pages() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    assert item_page(items, after=None, limit=2, order="desc") == {
        "object": "list", "data": [{"id": "i4"}, {"id": "i3"}], "first_id": "i4",
        "last_id": "i3", "has_more": True}
    assert item_page(items, after="i3", limit=10, order="asc")["data"] == [{"id": "i4"}]
    empty = item_page(items, after="i4", limit=10, order="asc")
    assert (empty["data"], empty["first_id"], empty["has_more"]) == ([], None, False)
    with pytest.raises(InvalidRequestError) as info:
        item_page(items, after="nope", limit=10, order="asc")
    assert info.value.param == "after"
