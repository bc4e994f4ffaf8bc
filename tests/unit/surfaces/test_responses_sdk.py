"""The Responses surface end to end through the ``openai`` SDK: the SDK's request is
translated to chat, a chat upstream answers, the answer is translated back to the SDK. Every
scenario runs non-stream (``responses.create``/``parse``) and stream (``responses.stream``)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.responses import Response

from app.errors import UpstreamTimeoutError
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.gateway import CITY_ANSWER, MODES, City, SurfaceGateway
from tests.unit.surfaces.sdk import Upstream, openai_client

MODEL = "gpt-via-gateway"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather at a place",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"], "additionalProperties": False},
           "strict": True}
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def ask(gateway: SurfaceGateway, stream: bool, **params: Any) -> Response:
    client = openai_client(Upstream(gateway.responses))
    params.setdefault("model", MODEL)
    if not stream:
        return client.responses.create(**params)
    with client.responses.stream(**params) as events:
        return events.get_final_response()


@MODES
def test_text_with_instructions(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion("Bonjour !"))
    response = ask(gateway, stream, instructions="Answer in French.", input="Hello",
                   metadata={"session": "s1"}, temperature=0.4)
    assert gateway.chats[0]["messages"] == [{"role": "system", "content": "Answer in French."},
                                            {"role": "user", "content": "Hello"}]
    assert (gateway.chats[0]["temperature"], "metadata" in gateway.chats[0]) == (0.4, False)
    assert (response.status, response.output_text, response.model) == (
        "completed", "Bonjour !", MODEL)
    assert (response.instructions, response.metadata) == ("Answer in French.",
                                                          {"session": "s1"})


@MODES
def test_function_call_round_trip_with_previous_items(stream: bool) -> None:
    """The client sends the earlier output items back itself (``store: false`` style)."""
    gateway = SurfaceGateway.scripted(
        fx.completion(None, finish="tool_calls",
                      tool_calls=[fx.call("call_w1", "get_weather", '{"location":"Paris"}')]),
        fx.completion("It is 18°C in Paris."))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = ask(gateway, stream, input=[question], tools=[WEATHER], store=False)
    call = first.output[0]
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_w1", "get_weather",
                                                         '{"location":"Paris"}')
    second = ask(gateway, stream, tools=[WEATHER], store=False, input=[
        question, *first.output,
        {"type": "function_call_output", "call_id": call.call_id, "output": "18°C"}])
    assert gateway.chats[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_w1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "18°C"}]
    assert gateway.chats[1]["tools"][0]["function"]["strict"] is True
    assert second.output_text == "It is 18°C in Paris."
    assert gateway.stored == {}


@MODES
def test_function_call_round_trip_with_previous_response_id(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(
        fx.completion("Checking.", finish="tool_calls",
                      tool_calls=[fx.call("call_w1", "get_weather", '{"location":"Paris"}')]),
        fx.completion("It is 18°C in Paris."))
    first = ask(gateway, stream, input="Weather in Paris?", tools=[WEATHER])
    assert first.id in gateway.stored
    call = next(item for item in first.output if item.type == "function_call")
    second = ask(gateway, stream, tools=[WEATHER], previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "18°C"}])
    assert [m["role"] for m in gateway.chats[1]["messages"]] == ["user", "assistant", "tool"]
    assert gateway.chats[1]["messages"][1]["content"] == "Checking."
    assert (second.previous_response_id, second.output_text) == (first.id,
                                                                 "It is 18°C in Paris.")


@MODES
def test_an_image(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion("A pixel."))
    ask(gateway, stream, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": IMAGE, "detail": "auto"}]}])
    assert gateway.chats[0]["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": IMAGE, "detail": "auto"}}]


@MODES
def test_structured_output(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion(CITY_ANSWER))
    client = openai_client(Upstream(gateway.responses))
    params: dict[str, Any] = {"model": MODEL, "input": "Largest French city?",
                              "text_format": City}
    if stream:
        with client.responses.stream(**params) as events:
            parsed = events.get_final_response().output_parsed
    else:
        parsed = client.responses.parse(**params).output_parsed
    spec = gateway.chats[0]["response_format"]["json_schema"]
    assert (spec["name"], spec["strict"]) == ("City", True)
    assert parsed == City(name="Paris", population=2100000)


@MODES
def test_cached_and_reasoning_tokens_and_effort(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion(usage=fx.CACHED_USAGE))
    usage = ask(gateway, stream, input="Think.", reasoning={"effort": "high"}).usage
    assert gateway.chats[0]["reasoning_effort"] == "high"
    assert usage is not None
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens,
            usage.output_tokens_details.reasoning_tokens, usage.total_tokens) == (
        100, 64, 20, 8, 120)


def test_an_answer_cut_by_max_output_tokens_is_incomplete() -> None:
    gateway = SurfaceGateway.scripted(fx.completion("Cut", finish="length"))
    response = ask(gateway, False, input="Write a novel.", max_output_tokens=16)
    assert gateway.chats[0]["max_completion_tokens"] == 16
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@MODES
@pytest.mark.parametrize(("params", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"background": True}, "background"),
    ({"previous_response_id": "resp_missing"}, "previous_response_id"),
])
def test_untranslatable_requests_are_the_sdks_bad_request(
        stream: bool, params: dict[str, Any], param: str) -> None:
    gateway = SurfaceGateway.scripted()
    with pytest.raises(openai.BadRequestError) as info:
        ask(gateway, stream, input="Hi", **params)
    assert info.value.param == param
    assert gateway.chats == []


@MODES
def test_upstream_failures_are_the_sdks_error_classes(stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        ask(SurfaceGateway.scripted(UpstreamTimeoutError("The upstream timed out.")), stream,
            input="Hi")
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"
