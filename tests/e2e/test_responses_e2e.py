"""``/v1/responses`` end to end: the official ``openai`` SDK -> real Gunicorn (gevent) -> a
deployment that speaks the Responses API (relayed statelessly: ``bench/mock_responses.py``,
which like OpenAI with nothing stored refuses ``previous_response_id`` and item ids), a
chat-only OpenAI-compatible one and the built-in mock model (both translated).

Every scenario runs against the three kinds; the gateway's store makes
``previous_response_id`` work on all of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from pydantic import BaseModel

from tests.e2e.test_faults import access_line, usage_row
from tests.openai_spec import assert_valid
from tests.procs import MASTER_KEY, Proc, running, sdk_client, start_gateway

pytestmark = pytest.mark.e2e

KINDS = pytest.mark.parametrize("model", ["native", "chatty", "builtin"])
MODES = pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False},
           "strict": True}
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    base = f"{upstream.url}/v1"
    models = [
        {"name": "native", "provider": "openai", "model": "gpt-native", "api_base": base,
         "api_key": "sk-upstream", "responses_api": True},
        {"name": "azure", "provider": "azure", "model": "gpt-azure", "api_base": upstream.url,
         "api_version": "2025-04-01-preview", "api_key": "azure-key", "responses_api": True},
        {"name": "chatty", "provider": "openai", "model": "chat-only", "api_base": base},
        {"name": "builtin", "provider": "mock", "model": "mock-e2e", "mock": {"tokens": 6}},
    ]
    env = {"NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2"}
    with running(start_gateway(e2e_tmp, models, env=env)) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> Iterator[openai.OpenAI]:
    with sdk_client(gateway) as sdk:
        yield sdk


def sent(upstream: Proc) -> dict[str, Any]:
    """What the mock upstream received last."""
    stats: dict[str, Any] = requests.get(f"{upstream.url}/_stats", timeout=5).json()
    return stats


def ask(client: openai.OpenAI, stream: bool, **params: Any) -> Any:
    """``responses.create``, or ``responses.stream`` with the SDK's event helpers."""
    if not stream:
        return client.responses.create(**params)
    with client.responses.stream(**params) as events:
        kinds = [event.type for event in events]
        final = events.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
    return final


@KINDS
@MODES
def test_text(client: openai.OpenAI, upstream: Proc, model: str, stream: bool) -> None:
    response = ask(client, stream, model=model, input="Hello", instructions="Be brief.",
                   metadata={"run": "e2e"})
    assert_valid(response.model_dump(mode="json", exclude_unset=True), "Response")
    assert (response.status, response.store, response.metadata) == ("completed", True,
                                                                    {"run": "e2e"})
    assert response.output_text and response.usage is not None
    assert response.usage.total_tokens > 0
    if model == "native":  # relayed statelessly: the gateway keeps the state
        body = sent(upstream)["last_body"]
        assert (body["model"], body["store"], body["input"]) == ("gpt-native", False, "Hello")
        assert sent(upstream)["last_headers"]["authorization"] == "Bearer sk-upstream"
    stored = client.responses.retrieve(response.id)  # as answered (a stream: its final one)
    assert (stored.id, stored.status, stored.output_text, stored.usage) == (
        response.id, "completed", response.output_text, response.usage)


def test_azure_speaks_the_responses_api(client: openai.OpenAI, upstream: Proc) -> None:
    response = client.responses.create(model="azure", input="Hello")
    seen = sent(upstream)
    assert seen["last_headers"]["api-key"] == "azure-key"
    assert (seen["last_body"]["model"], seen["last_body"]["store"]) == ("gpt-azure", False)
    assert response.output_text == "mock responses upstream says hello to the gateway"


@KINDS
@MODES
def test_function_call_round_trip_with_previous_response_id(
        client: openai.OpenAI, upstream: Proc, model: str, stream: bool) -> None:
    first = ask(client, stream, model=model, input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = ask(client, stream, model=model, tools=[WEATHER], previous_response_id=first.id,
                 input=[{"type": "function_call_output", "call_id": call.call_id,
                         "output": "18°C"}])
    assert second.previous_response_id == first.id
    assert second.output_text == "The tool said: 18°C"
    if model == "native":  # the conversation went upstream in full, without state
        body = sent(upstream)["last_body"]
        assert "previous_response_id" not in body and body["store"] is False
        assert [item.get("type") for item in body["input"]] == [
            "message", "function_call", "function_call_output"]
        assert not any("id" in item for item in body["input"])
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["function_call_output"]


@KINDS
@MODES
def test_structured_output(client: openai.OpenAI, model: str, stream: bool) -> None:
    params: dict[str, Any] = {"model": model, "input": "Largest French city?",
                              "text_format": City}
    if stream:
        with client.responses.stream(**params) as events:
            parsed = events.get_final_response().output_parsed
    else:
        parsed = client.responses.parse(**params).output_parsed
    assert parsed == City(name="Paris", population=2100000)


def test_usage_and_access_line_say_responses(client: openai.OpenAI, gateway: Proc) -> None:
    rid = f"resp-e2e-{uuid.uuid4().hex[:8]}"
    client.responses.create(model="chatty", input="Hello", extra_headers={"X-Request-ID": rid})
    row = usage_row(gateway, rid)
    assert (row.api, row.model, row.deployment, row.status) == ("responses", "chatty",
                                                                "chatty#0", 200)
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
    assert access_line(gateway, rid)["api"] == "responses"


def test_hosted_tools_are_a_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="native", input="News?", tools=[{"type": "web_search"}])
    assert (info.value.param, info.value.code) == ("tools[0].type", "unsupported_parameter")


def test_another_key_cannot_see_continue_or_delete(gateway: Proc) -> None:
    def new_key(name: str) -> str:
        resp = requests.post(f"{gateway.url}/admin/keys", headers=AUTH,
                             json={"name": name}, timeout=5)
        key: str = resp.json()["key"]
        return key

    with sdk_client(gateway, new_key("a")) as alice, sdk_client(gateway, new_key("b")) as bob:
        mine = alice.responses.create(model="builtin", input="A secret")
        with pytest.raises(openai.NotFoundError):
            bob.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            bob.responses.input_items.list(mine.id)
        with pytest.raises(openai.BadRequestError) as info:
            bob.responses.create(model="builtin", input="More", previous_response_id=mine.id)
        assert info.value.code == "previous_response_not_found"
        with pytest.raises(openai.NotFoundError):
            bob.responses.delete(mine.id)
        assert alice.responses.retrieve(mine.id).output_text == mine.output_text
        alice.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            alice.responses.retrieve(mine.id)
