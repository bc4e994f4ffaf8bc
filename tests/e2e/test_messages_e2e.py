"""``/v1/messages`` end to end: the official ``anthropic`` SDK -> real Gunicorn (gevent) -> an
Anthropic upstream (relayed as is) and an OpenAI-compatible one (translated both ways).

The Anthropic-shaped mock (tests/e2e/anthropic_mock.py) answers text, or two interleaved
tool_use blocks when tools are given; the OpenAI-shaped mock (bench/mock_upstream.py) answers
a tool call when tools are given and the last message is no tool result.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import requests

from tests.e2e.anthropic_mock import API_KEY
from tests.e2e.test_faults import access_line, usage_row
from tests.procs import MASTER_KEY, Proc, running, start_gateway

pytestmark = pytest.mark.e2e

WEATHER = {"name": "get_weather", "description": "Weather at a place",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
TIME = {"name": "get_time", "input_schema": {"type": "object",
                                             "properties": {"timezone": {"type": "string"}}}}
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(anthropic_upstream: Proc, upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    models = [
        {"name": "claude", "provider": "anthropic", "model": "claude-e2e",
         "api_base": f"{anthropic_upstream.url}/v1", "api_key": API_KEY},
        {"name": "chatty", "provider": "openai", "model": "chat-e2e",
         "api_base": f"{upstream.url}/v1"},
        {"name": "builtin", "provider": "mock", "model": "mock-e2e",
         "mock": {"tokens": 6}},
    ]
    env = {"NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2"}
    with running(start_gateway(e2e_tmp, models, env=env)) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> Iterator[anthropic.Anthropic]:
    # api_key is sent as x-api-key, as every Anthropic client does
    with anthropic.Anthropic(api_key=MASTER_KEY, base_url=gateway.url, max_retries=0,
                             timeout=20) as sdk:
        yield sdk


def last(proc: Proc) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{proc.url}/_stats", timeout=5).json()
    return result


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# --- to an Anthropic deployment: relayed as is ---------------------------------------------

def test_create_is_relayed_as_is(client: anthropic.Anthropic, gateway: Proc,
                                 anthropic_upstream: Proc) -> None:
    rid = uuid.uuid4().hex
    message = client.messages.create(
        model="claude", max_tokens=100, system="Be brief.", messages=HELLO,
        metadata={"user_id": "u-1"}, extra_headers={"X-Request-ID": rid})
    assert text_of(message) == "Hello from the Anthropic mock."
    assert (message.stop_reason, message.usage.input_tokens) == ("end_turn", 25)
    sent = last(anthropic_upstream)
    # the client's body, field for field, with the deployment's model name
    assert sent["last_body"] == {"model": "claude-e2e", "max_tokens": 100,
                                 "system": "Be brief.", "messages": HELLO,
                                 "metadata": {"user_id": "u-1"}}
    assert sent["last_headers"]["x-api-key"] == API_KEY  # the upstream's key, not the client's
    row = usage_row(gateway, rid)
    assert (row.api, row.deployment, row.prompt_tokens, row.completion_tokens) == (
        "messages", "claude#0", 25, 15)


def test_stream_is_relayed_event_for_event(gateway: Proc, anthropic_upstream: Proc) -> None:
    body = {"model": "claude", "max_tokens": 50, "messages": HELLO, "stream": True}
    with requests.post(f"{gateway.url}/v1/messages", json=body, stream=True, timeout=20,
                       headers={"x-api-key": MASTER_KEY,
                                "anthropic-version": "2023-06-01"}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.content
    events = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
    from tests import anthropic_fixtures as fx

    assert events == fx.text_stream("Hello", " from", " the", " Anthropic", " mock.")


def test_stream_with_the_sdk_helper_and_a_bearer_key(gateway: Proc) -> None:
    with anthropic.Anthropic(auth_token=MASTER_KEY, base_url=gateway.url, max_retries=0) as sdk:
        with sdk.messages.stream(model="claude", max_tokens=50, messages=HELLO) as stream:
            deltas = list(stream.text_stream)
            message = stream.get_final_message()
    assert "".join(deltas) == "Hello from the Anthropic mock."
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 15


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_use_round_trip_relayed(client: anthropic.Anthropic, anthropic_upstream: Proc,
                                     stream: bool) -> None:
    ask = {"model": "claude", "max_tokens": 200, "tools": [WEATHER, TIME],
           "messages": [{"role": "user", "content": "weather and time?"}]}
    first = _ask(client, stream, ask)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.id, u.name) for u in uses] == [("toolu_01A", "get_weather"),
                                              ("toolu_01B", "get_time")]
    assert uses[0].input == {"location": "San Francisco, CA", "unit": "celsius"}
    follow = {**ask, "messages": [*ask["messages"],
                                  {"role": "assistant", "content": [u.model_dump() for u in uses]},
                                  {"role": "user", "content": [
                                      {"type": "tool_result", "tool_use_id": u.id,
                                       "content": "sunny"} for u in uses]}]}
    _ask(client, stream, follow)
    sent = last(anthropic_upstream)["last_body"]
    assert sent["messages"][-1]["content"][0] == {"type": "tool_result",
                                                  "tool_use_id": "toolu_01A", "content": "sunny"}


def test_upstream_errors_keep_anthropic_statuses(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="claude", max_tokens=10,
                               messages=[{"role": "user", "content": "overload"}])
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_an_error_event_mid_stream_reaches_the_sdk(client: anthropic.Anthropic,
                                                   gateway: Proc) -> None:
    rid = uuid.uuid4().hex
    with pytest.raises(anthropic.APIStatusError, match="Internal server error"):
        with client.messages.stream(model="claude", max_tokens=50,
                                    messages=[{"role": "user", "content": "midstream-error"}],
                                    extra_headers={"X-Request-ID": rid}) as stream:
            stream.get_final_message()
    line = access_line(gateway, rid)
    assert line["status"] == 200 and line["error_code"] == "upstream_api_error"


# --- to an OpenAI-compatible deployment: translated both ways ------------------------------

def _ask(client: anthropic.Anthropic, stream: bool, params: dict[str, Any]) -> Any:
    if not stream:
        return client.messages.create(**params)
    with client.messages.stream(**params) as events:
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_text_through_chat(client: anthropic.Anthropic, upstream: Proc, stream: bool) -> None:
    message = _ask(client, stream, {"model": "chatty", "max_tokens": 4, "system": "Be brief.",
                                    "messages": HELLO})
    assert text_of(message) == "mock upstream says hello"
    assert message.stop_reason == "max_tokens"  # chat's "length"
    assert message.usage.output_tokens == 4
    sent = last(upstream)["last_body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]
    assert sent["model"] == "chat-e2e" and sent["max_completion_tokens"] == 4


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_tool_use_round_trip_through_chat(client: anthropic.Anthropic, upstream: Proc,
                                          stream: bool) -> None:
    ask = {"model": "chatty", "max_tokens": 200, "tools": [WEATHER],
           "messages": [{"role": "user", "content": "weather in Paris?"}]}
    first = _ask(client, stream, ask)
    assert first.stop_reason == "tool_use"  # not end_turn: an agent would stop mid-task
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert last(upstream)["last_body"]["tools"][0]["function"]["name"] == "get_weather"
    follow = {**ask, "messages": [*ask["messages"],
                                  {"role": "assistant", "content": [use.model_dump()]},
                                  {"role": "user", "content": [
                                      {"type": "tool_result", "tool_use_id": use.id,
                                       "content": "18 degrees"}]}]}
    answer = _ask(client, stream, follow)
    assert answer.stop_reason == "end_turn"
    assert text_of(answer) == "The tool said: 18 degrees"
    sent = last(upstream)["last_body"]["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "18 degrees"


def test_builtin_mock_and_usage_record(client: anthropic.Anthropic, gateway: Proc) -> None:
    rid = uuid.uuid4().hex
    with client.messages.stream(model="builtin", max_tokens=100, messages=HELLO,
                                extra_headers={"X-Request-ID": rid}) as stream:
        message = stream.get_final_message()
    assert message.usage.output_tokens == 6 and len(text_of(message).split()) == 6
    row = usage_row(gateway, rid)
    assert (row.api, row.completion_tokens, row.stream, row.status) == ("messages", 6, True, 200)


def test_count_tokens_is_the_gateway_estimate(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="chatty", messages=HELLO)
    assert counted.input_tokens > 0


def test_errors_are_anthropic_shaped(client: anthropic.Anthropic, gateway: Proc) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=10, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="chatty", max_tokens=0, messages=HELLO)
    with anthropic.Anthropic(api_key="sk-nr-wrong", base_url=gateway.url, max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.create(model="chatty", max_tokens=10, messages=HELLO)
    resp = requests.post(f"{gateway.url}/v1/messages", data=b"{", timeout=5,
                         headers={"x-api-key": MASTER_KEY, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"
