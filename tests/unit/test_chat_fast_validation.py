"""The chat body fast path agrees with the marshmallow schema it short-cuts.

``is_plainly_valid`` may only say True for bodies the schema accepts; the common valid shapes
must take the fast path (else it is useless); everything else is left to the schema, so every
error message stays the schema's own.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from marshmallow import Schema

from app.schemas.chat import ChatCompletionRequestSchema, is_plainly_valid

MSG = {"role": "user", "content": "hi"}
BASE: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [MSG]}

# Valid bodies the fast path must accept.
COMMON_VALID: list[dict[str, Any]] = [
    BASE,
    {**BASE, "stream": True},
    {**BASE, "stream": False, "stream_options": {"include_usage": True}},
    {**BASE, "stream": None, "stream_options": None},
    {**BASE, "max_tokens": 16, "temperature": 0.7, "top_p": 1, "n": 1, "seed": -3},
    {**BASE, "max_completion_tokens": 1, "presence_penalty": -2, "frequency_penalty": 2.0},
    {**BASE, "temperature": 0, "stop": "\n", "user": "u-1", "logprobs": False},
    {**BASE, "unknown_new_param": {"anything": [1, 2]}, "metadata": None},
    {"model": "m" * 256, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "x"}], "name": "bob"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "assistant"},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "function", "content": None, "name": "f"},
        {"role": "user", "content": [], "extra": object()},
    ]},
]

# Valid bodies the fast path may leave to the schema (rarer fields or shapes).
OTHER_VALID: list[dict[str, Any]] = [
    {**BASE, "tools": [{"type": "function"}], "tool_choice": "auto"},
    {**BASE, "stop": ["a", "b"]},
    {**BASE, "response_format": {"type": "json_object"}, "top_logprobs": 3},
    {**BASE, "stream_options": {"include_usage": True, "x": 1}},
    {**BASE, "max_tokens": 1.0, "n": 2.0},  # JSON's 1.0 is the integer 1 (as in JSON Schema)
]

INVALID: list[Any] = [
    {}, [], None, "text", {"model": "m"}, {"messages": [MSG]},
    {**BASE, "model": ""}, {**BASE, "model": "m" * 257}, {**BASE, "model": None},
    {**BASE, "model": 3},
    {**BASE, "messages": []}, {**BASE, "messages": None}, {**BASE, "messages": "hi"},
    {**BASE, "messages": [MSG, "x"]}, {**BASE, "messages": [[MSG]]},
    {**BASE, "messages": [{"content": "x"}]}, {**BASE, "messages": [{"role": "robot",
                                                                      "content": "x"}]},
    {**BASE, "messages": [{"role": None, "content": "x"}]},
    {**BASE, "messages": [{"role": "user"}]}, {**BASE, "messages": [{"role": "system",
                                                                      "content": None}]},
    {**BASE, "messages": [{"role": "developer"}]},
    {**BASE, "messages": [{"role": "user", "content": 5}]},
    {**BASE, "messages": [{"role": "user", "content": ["x"]}]},
    {**BASE, "messages": [{"role": "user", "content": {"text": "x"}}]},
    {**BASE, "messages": [{"role": "user", "content": "x", "name": None}]},
    {**BASE, "messages": [{"role": "user", "content": "x", "name": 1}]},
    {**BASE, "messages": [{"role": "tool", "content": "x", "tool_call_id": 7}]},
    {**BASE, "messages": [{"role": "assistant", "tool_calls": None}]},
    {**BASE, "messages": [{"role": "assistant", "tool_calls": {"id": 1}}]},
    {**BASE, "messages": [{"role": "assistant", "tool_calls": ["x"]}]},
    {**BASE, "stream": "true"}, {**BASE, "stream": 1}, {**BASE, "stream": 0},
    {**BASE, "stream_options": {"include_usage": "yes"}},
    {**BASE, "stream_options": {"include_usage": None}}, {**BASE, "stream_options": []},
    {**BASE, "max_tokens": 0}, {**BASE, "max_tokens": -1}, {**BASE, "max_tokens": 1.5},
    {**BASE, "max_tokens": True}, {**BASE, "max_tokens": "5"},
    {**BASE, "max_completion_tokens": 0}, {**BASE, "n": 0}, {**BASE, "n": 129},
    {**BASE, "n": False}, {**BASE, "temperature": 2.01}, {**BASE, "temperature": -0.1},
    {**BASE, "temperature": float("nan")}, {**BASE, "temperature": float("inf")},
    {**BASE, "temperature": True}, {**BASE, "temperature": "0.5"},
    {**BASE, "temperature": 10 ** 400}, {**BASE, "top_p": 1.5},
    {**BASE, "presence_penalty": -3}, {**BASE, "frequency_penalty": 2.5},
    {**BASE, "stop": 5}, {**BASE, "stop": ["a"] * 5}, {**BASE, "seed": 1.5},
    {**BASE, "seed": True}, {**BASE, "user": None}, {**BASE, "user": 5},
    {**BASE, "logprobs": "no"}, {**BASE, "top_logprobs": 21}, {**BASE, "tools": "x"},
    {**BASE, "response_format": "json"},
]

_schema = ChatCompletionRequestSchema()


def _schema_errors(body: Any) -> dict[str, Any]:
    return Schema.validate(_schema, body)  # marshmallow's own answer, without the fast path


@pytest.mark.parametrize("body", COMMON_VALID)
def test_common_valid_bodies_take_the_fast_path(body: dict[str, Any]) -> None:
    assert _schema_errors(body) == {}
    assert is_plainly_valid(body)
    assert _schema.validate(body) == {}


@pytest.mark.parametrize("body", OTHER_VALID)
def test_rarer_valid_bodies_are_valid_either_way(body: dict[str, Any]) -> None:
    assert _schema_errors(body) == {}
    assert _schema.validate(body) == {}


@pytest.mark.parametrize("body", INVALID)
def test_invalid_bodies_get_the_schemas_errors(body: Any) -> None:
    assert not is_plainly_valid(body)
    if isinstance(body, dict):
        expected = _schema_errors(body)
        assert expected, body
        assert _schema.validate(body) == expected


_VALUES: list[Any] = [None, True, False, 0, 1, -1, 2, 129, 0.5, 2.5, float("nan"), "", "x",
                      "user", "assistant", b"x", [], [1], ["a"], [{}], {}, {"a": 1},
                      {"include_usage": True}, {"include_usage": 1}, [MSG], [{"role": "user"}]]
_KEYS = [*ChatCompletionRequestSchema._declared_fields, "other"]
_MSG_KEYS = ["role", "content", "name", "tool_call_id", "tool_calls", "other"]


def test_fast_path_never_accepts_what_the_schema_rejects() -> None:
    """Random mutations of valid bodies: fast-path 'valid' always implies schema 'valid'."""
    rng = random.Random(8)
    accepted = 0
    for _ in range(5000):
        body = copy.deepcopy(rng.choice(COMMON_VALID))
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                body[rng.choice(_KEYS)] = rng.choice(_VALUES)
            elif isinstance(body.get("messages"), list) and body["messages"]:
                msg = rng.choice(body["messages"])
                if isinstance(msg, dict):
                    if rng.random() < 0.2:
                        msg.pop(rng.choice(_MSG_KEYS), None)
                    else:
                        msg[rng.choice(_MSG_KEYS)] = rng.choice(_VALUES)
        if is_plainly_valid(body):
            accepted += 1
            assert _schema_errors(body) == {}, body
        assert _schema.validate(body) == _schema_errors(body)
    assert accepted > 100  # the mutations do exercise the fast path
