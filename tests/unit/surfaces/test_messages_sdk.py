"""The Anthropic Messages surface end to end through the ``anthropic`` SDK: the SDK's request
is translated to chat, a chat upstream answers, the answer is translated back to the SDK.
Every scenario runs non-stream (``messages.create``) and stream (``messages.stream``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from app.errors import RateLimitError
from app.providers.base import ChatRequest
from app.providers.mock import MockProvider
from app.settings import Deployment, MockParams, Settings
from app.surfaces.messages_request import count_tokens, messages_to_chat
from app.tokens import estimate_message_tokens
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.gateway import CITY_ANSWER, MODES, City, SurfaceGateway, provider_upstream
from tests.unit.surfaces.sdk import Upstream, anthropic_client, json_answer

MODEL = "claude-via-gateway"
WEATHER = {"name": "get_weather", "description": "Weather at a place",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")


def ask(gateway: SurfaceGateway, stream: bool, **params: Any) -> Message:
    client = anthropic_client(Upstream(gateway.messages))
    params.setdefault("model", MODEL)
    params.setdefault("max_tokens", 512)
    if not stream:
        return client.messages.create(**params)
    with client.messages.stream(**params) as events:
        return events.get_final_message()




@MODES
def test_text_with_a_system_prompt(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion("Bonjour !"))
    message = ask(gateway, stream, system=[{"type": "text", "text": "Answer in French."}],
                  messages=[{"role": "user", "content": "Hello"}])
    assert gateway.chats[0]["messages"] == [{"role": "system", "content": "Answer in French."},
                                            {"role": "user", "content": "Hello"}]
    assert gateway.chats[0].get("stream", False) is stream
    assert (message.model, message.stop_reason) == (MODEL, "end_turn")
    assert message.content[0].type == "text" and message.content[0].text == "Bonjour !"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 12)


@MODES
def test_tool_use_then_tool_result_then_answer(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(
        fx.completion("Let me check.", finish="tool_calls",
                      tool_calls=[fx.call("call_w1", "get_weather", '{"location": "Paris"}')]),
        fx.completion("It is 18°C in Paris."))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = ask(gateway, stream, tools=[WEATHER], messages=[question])
    assert first.stop_reason == "tool_use"
    tool_use = first.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == ("toolu_w1", "get_weather",
                                                            {"location": "Paris"})
    # the client sends the assistant's blocks back as the SDK gave them, then the result
    second = ask(gateway, stream, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,
                                      "content": "18°C"}]}])
    assert gateway.chats[1]["messages"][1:] == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_w1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_w1", "content": "18°C"}]
    assert gateway.chats[1]["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text == "It is 18°C in Paris."


@MODES
def test_an_image(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion("A red pixel."))
    ask(gateway, stream, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}])
    assert gateway.chats[0]["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "What is this?"}]


@MODES
@pytest.mark.parametrize(("answer", "reason", "sequence"), [
    (fx.completion("Cut", finish="length"), "max_tokens", None),
    (fx.completion("Done", stop_reason="###"), "stop_sequence", "###"),
    (fx.completion("No.", finish="content_filter"), "refusal", None),
    (fx.completion(None, finish="stop", tool_calls=[fx.call("call_1", "get_weather", "{}")]),
     "tool_use", None),
])
def test_stop_reasons(stream: bool, answer: dict[str, Any], reason: str,
                      sequence: str | None) -> None:
    gateway = SurfaceGateway.scripted(answer)
    message = ask(gateway, stream, stop_sequences=["###"], tools=[WEATHER],
                  messages=[{"role": "user", "content": "Go"}])
    assert gateway.chats[0]["stop"] == ["###"]
    assert (message.stop_reason, message.stop_sequence) == (reason, sequence)


@MODES
def test_structured_output(stream: bool) -> None:
    gateway = SurfaceGateway.scripted(fx.completion(CITY_ANSWER))
    client = anthropic_client(Upstream(gateway.messages))
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "output_format": City,
                              "messages": [{"role": "user", "content": "Largest French city?"}]}
    if stream:
        with client.messages.stream(**params) as events:
            parsed = events.get_final_message().parsed_output
    else:
        parsed = client.messages.parse(**params).parsed_output
    response_format = gateway.chats[0]["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"]
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"name", "population"}
    assert parsed == City(name="Paris", population=2100000)


@MODES
def test_cached_tokens(stream: bool) -> None:
    usage = ask(SurfaceGateway.scripted(fx.completion(usage=fx.CACHED_USAGE)), stream,
                messages=[{"role": "user", "content": "Hi"}]).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (
        36, 64, 20)


@MODES
def test_invalid_requests_are_the_sdks_bad_request(stream: bool) -> None:
    gateway = SurfaceGateway.scripted()
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(gateway, stream, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"temperature": 1.5})
    assert info.value.body == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "temperature: Input should be a number between 0 and 1."}}
    assert gateway.chats == []  # nothing reached the upstream


@MODES
def test_upstream_failures_are_the_sdks_error_classes(stream: bool) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(SurfaceGateway.scripted(RateLimitError("Rate limit reached.")), stream,
            messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body == {"type": "error", "error": {"type": "rate_limit_error",
                                                          "message": "Rate limit reached."}}


def mock_provider(tokens: int) -> MockProvider:
    deployment = Deployment(id="mock#0", name="mock", provider="mock", model="mock-model",
                            mock=MockParams(tokens=tokens))
    settings = Settings(master_key="sk-test", config_path=Path("unused.yaml"),
                        deployments=(deployment,))
    return MockProvider(deployment, settings=settings)


@MODES
@pytest.mark.parametrize(("max_tokens", "reason"), [(100, "end_turn"), (3, "max_tokens")])
def test_through_the_built_in_mock_provider(stream: bool, max_tokens: int, reason: str) -> None:
    provider = mock_provider(tokens=6)
    gateway = SurfaceGateway(provider_upstream(provider))
    message = ask(gateway, stream, max_tokens=max_tokens,
                  messages=[{"role": "user", "content": "Hello"}])
    expected = json_text(provider.complete(ChatRequest(gateway.chats[0] | {"stream": False},
                                                       MODEL, "req")).body)
    assert message.content[0].type == "text" and message.content[0].text == expected
    assert message.stop_reason == reason
    assert message.usage.output_tokens == min(6, max_tokens)


def json_text(body: bytes) -> str:
    return str(json.loads(body)["choices"][0]["message"]["content"])


def test_count_tokens_gives_the_gateways_estimate() -> None:
    client = anthropic_client(Upstream(lambda body: json_answer(count_tokens(body))))
    messages: list[Any] = [{"role": "user", "content": "How many tokens is this prompt?"}]
    counted = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    chat = messages_to_chat({"model": MODEL, "max_tokens": 1, "system": "Be brief.",
                             "messages": messages})
    assert counted.input_tokens == estimate_message_tokens(chat["messages"]) > 0
