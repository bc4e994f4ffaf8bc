"""The stored form of responses and the conversation behind ``previous_response_id``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidRequestError
from app.surfaces.responses import chat_to_response, response_shell
from app.surfaces.responses_request import responses_to_chat
from app.surfaces.responses_store import (
    StoredResponse,
    load_history,
    should_store,
    stored_response,
)
from tests.unit.surfaces import chat_fixtures as fx

WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}


class Store(dict[str, StoredResponse]):
    """A store keeping what the database would: JSON, read back as new objects."""

    def put(self, stored: StoredResponse) -> None:
        self[stored["id"]] = json.loads(json.dumps(stored))

    def load(self, response_id: str) -> StoredResponse | None:
        return self.get(response_id)


def turn(store: Store, body: dict[str, Any], completion: dict[str, Any]
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One request as the wiring would run it: history, translation, answer, storage."""
    previous = body.get("previous_response_id")
    history = load_history(previous, store.load) if previous else []
    chat = responses_to_chat(body, history=history)
    response = chat_to_response(completion, response_shell(body, model=body["model"]))
    if should_store(body):
        store.put(stored_response(body, response))
    return chat, response


def test_a_function_call_round_trip_over_three_responses() -> None:
    store = Store()
    _, first = turn(store, {"model": "m", "instructions": "Be brief.", "tools": [WEATHER],
                            "input": "Weather in Paris?"},
                    fx.completion(None, finish="tool_calls",
                                  tool_calls=[fx.call("call_1", "get_weather",
                                                      '{"location": "Paris"}')]))
    chat, second = turn(store, {
        "model": "m", "tools": [WEATHER], "previous_response_id": first["id"],
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "18°C"}]},
        fx.completion("It is 18°C in Paris."))
    assert chat["messages"] == [  # the first instructions are not carried over
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
    ]
    chat, _ = turn(store, {"model": "m", "previous_response_id": second["id"],
                           "instructions": "Answer in French.", "input": "And tomorrow?"},
                   fx.completion("Demain, 20°C."))
    assert [(m["role"], m.get("content")) for m in chat["messages"]] == [
        ("system", "Answer in French."), ("user", "Weather in Paris?"), ("assistant", None),
        ("tool", "18°C"), ("assistant", "It is 18°C in Paris."), ("user", "And tomorrow?")]


def test_stored_form_is_the_request_input_and_the_response() -> None:
    store = Store()
    body = {"model": "m", "input": "Hi", "metadata": {"k": "v"}}
    _, response = turn(store, body, fx.completion("Hello"))
    assert store[response["id"]] == {
        "id": response["id"], "previous_response_id": None,
        "input": [{"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": "Hi"}]}],
        "response": json.loads(json.dumps(response))}


def test_store_false_keeps_nothing() -> None:
    store = Store()
    turn(store, {"model": "m", "input": "Hi", "store": False}, fx.completion())
    assert store == {}


@pytest.mark.parametrize("missing", ["resp_unknown", "middle"])
def test_a_missing_previous_response_is_a_400(missing: str) -> None:
    store = Store()
    _, first = turn(store, {"model": "m", "input": "1"}, fx.completion())
    _, second = turn(store, {"model": "m", "input": "2", "previous_response_id": first["id"]},
                     fx.completion())
    wanted = second["id"]
    if missing == "middle":
        del store[first["id"]]
        gone = first["id"]
    else:
        wanted = gone = missing
    with pytest.raises(InvalidRequestError) as info:
        load_history(wanted, store.load)
    err = info.value
    assert (err.status, err.param, err.code) == (400, "previous_response_id",
                                                 "previous_response_not_found")
    assert gone in err.message


def test_a_cycle_in_the_store_ends() -> None:
    looped: StoredResponse = {"id": "resp_a", "previous_response_id": "resp_a",
                              "input": [{"role": "user", "content": "x"}],
                              "response": {"output": []}}
    assert len(load_history("resp_a", lambda _: looped)) == 1000
