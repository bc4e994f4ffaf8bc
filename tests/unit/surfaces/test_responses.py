"""Chat completion -> Responses ``response`` object, checked with the ``openai`` SDK's type
and OpenAI's published schema."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from app.errors import GatewayError, InsufficientQuotaError, RateLimitError, UpstreamError
from app.surfaces.chat_stream import RelayedStreamError
from app.surfaces.responses import chat_to_response, response_error, response_shell
from tests.openai_spec import assert_valid
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.sdk import assert_no_extra

# "store" is in OpenAI's answers (and documented examples) but in neither the SDK's type nor
# the schema's property list, which allows additional properties.
ECHOED_BEYOND_THE_SDK = frozenset(("store",))
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather",
           "parameters": {"type": "object", "properties": {}}, "strict": False}


def checked(response: dict[str, Any]) -> Response:
    """Validate with OpenAI's schema and the SDK's type (strictly: no unknown fields)."""
    assert_valid(response, "Response")
    parsed = Response.model_validate(response)
    assert_no_extra(parsed, ECHOED_BEYOND_THE_SDK)
    return parsed


def answer(completion: dict[str, Any], **body: Any) -> Response:
    shell = response_shell({"model": "gpt-x", "input": "Hi", **body}, model="gpt-x",
                           response_id="resp_1", created_at=1700000000)
    return checked(chat_to_response(completion, shell))


def test_text_answer() -> None:
    response = answer(fx.completion("Hello!"))
    assert (response.id, response.object, response.status, response.model) == (
        "resp_1", "response", "completed", "gpt-x")
    assert response.output_text == "Hello!"
    item = response.output[0]
    assert item.type == "message" and item.id.startswith("msg_")
    assert item.model_dump(exclude_none=True, exclude={"id"}) == {
        "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "Hello!", "annotations": [],
                     "logprobs": []}]}
    assert response.usage is not None and response.usage.total_tokens == 42
    assert response.completed_at is not None and response.incomplete_details is None


def test_function_calls() -> None:
    response = answer(fx.completion(None, finish="tool_calls", tool_calls=[
        fx.call("call_abc", "get_weather", '{"location": "Paris"}'),
        fx.call("call_def", "get_weather", '{"location": "Rome"}')]), tools=[WEATHER])
    assert [item.model_dump(exclude_none=True) for item in response.output] == [
        {"type": "function_call", "id": "fc_abc", "call_id": "call_abc", "name": "get_weather",
         "arguments": '{"location": "Paris"}', "status": "completed"},
        {"type": "function_call", "id": "fc_def", "call_id": "call_def", "name": "get_weather",
         "arguments": '{"location": "Rome"}', "status": "completed"}]
    assert response.status == "completed"


@pytest.mark.parametrize(("finish", "status", "reason", "item_status"), [
    ("stop", "completed", None, "completed"),
    ("tool_calls", "completed", None, "completed"),
    ("length", "incomplete", "max_output_tokens", "incomplete"),
    ("content_filter", "incomplete", "content_filter", "completed"),
])
def test_status(finish: str, status: str, reason: str | None, item_status: str) -> None:
    response = answer(fx.completion("Some text", finish=finish))
    assert response.status == status
    assert (response.incomplete_details.reason if response.incomplete_details else None) == reason
    assert response.output[0].status == item_status
    assert (response.completed_at is not None) == (status == "completed")


def test_usage_with_cached_and_reasoning_tokens() -> None:
    usage = answer(fx.completion(usage=fx.CACHED_USAGE)).usage
    assert usage is not None
    assert usage.model_dump(exclude_none=True) == {
        "input_tokens": 100, "input_tokens_details": {"cached_tokens": 64,
                                                      "cache_write_tokens": 0},
        "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 8},
        "total_tokens": 120}


def test_no_usage_and_no_text() -> None:
    body = fx.completion("")
    del body["usage"]
    response = answer(body)
    assert (response.output, response.usage) == ([], None)


def test_the_request_settings_are_echoed() -> None:
    schema_format = {"type": "json_schema", "name": "person", "strict": True,
                     "schema": {"type": "object", "properties": {"name": {"type": "string"}},
                                "required": ["name"], "additionalProperties": False}}
    response = answer(fx.completion('{"name": "Ada"}'), instructions="Be brief.",
                      tools=[WEATHER], tool_choice="required", text={"format": schema_format},
                      temperature=0.3, top_p=0.8, parallel_tool_calls=False,
                      max_output_tokens=64, reasoning={"effort": "low"},
                      metadata={"session": "s1"}, previous_response_id="resp_0", store=False,
                      user="u1", safety_identifier="s1", prompt_cache_key="k1")
    assert (response.instructions, response.tool_choice, response.temperature, response.top_p,
            response.parallel_tool_calls, response.max_output_tokens, response.metadata,
            response.previous_response_id, response.user, response.safety_identifier,
            response.prompt_cache_key) == (
        "Be brief.", "required", 0.3, 0.8, False, 64, {"session": "s1"}, "resp_0", "u1", "s1",
        "k1")
    assert response.model_extra == {"store": False}
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert response.text is not None and response.text.format is not None
    assert response.text.format.model_dump(exclude_none=True, by_alias=True) == schema_format
    assert [t.model_dump(exclude_none=True) for t in response.tools] == [
        {"type": "function", "name": "get_weather", "description": "Weather",
         "parameters": {"type": "object", "properties": {}}, "strict": False}]


def test_defaults_are_echoed_as_openai_does() -> None:
    response = answer(fx.completion())
    assert (response.tool_choice, response.tools, response.parallel_tool_calls,
            response.truncation, response.metadata, response.model_extra) == (
        "auto", [], True, "disabled", {}, {"store": True})
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "text"


def test_a_fresh_id_per_response() -> None:
    first = response_shell({"input": "x"}, model="m")["id"]
    assert first.startswith("resp_") and first != response_shell({"input": "x"}, model="m")["id"]


@pytest.mark.parametrize(("err", "code"), [
    (RateLimitError("Slow down."), "rate_limit_exceeded"),
    (InsufficientQuotaError("Spent."), "rate_limit_exceeded"),
    (RelayedStreamError({"message": "x", "type": "tokens", "code": "rate_limit_exceeded"}),
     "rate_limit_exceeded"),
    (UpstreamError("Bad gateway."), "server_error"),
    (GatewayError("Oops."), "server_error"),
])
def test_errors_of_a_failed_response(err: GatewayError, code: str) -> None:
    assert response_error(err) == {"code": code, "message": err.message}
