"""End to end: the openai SDK -> real Gunicorn (gevent) -> the Anthropic-shaped mock server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.e2e.anthropic_mock import API_KEY, CLIENT
from tests.openai_spec import assert_valid
from tests.procs import (
    Proc,
    running,
    sdk_client,
    start_gateway,
)

pytestmark = pytest.mark.e2e

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"location": {"type": "string"}}}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object",
                                       "properties": {"timezone": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def gateway(anthropic_upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    base = f"{anthropic_upstream.url}/v1"
    models = [
        {"name": "claude", "provider": "anthropic", "model": "claude-e2e", "api_base": base,
         "api_key": API_KEY},
        {"name": "claude-oauth", "provider": "anthropic", "model": "claude-e2e",
         "api_base": base, "headers": {"AI-Resource-Group": "default"},
         "auth": {"type": "oauth2_client_credentials",
                  "token_url": f"{anthropic_upstream.url}/oauth/token",
                  "client_id": CLIENT[0], "client_secret": "os.environ/E2E_CLIENT_SECRET"}},
    ]
    with running(start_gateway(e2e_tmp, models, env={"E2E_CLIENT_SECRET": CLIENT[1]})) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> Iterator[openai.OpenAI]:
    with sdk_client(gateway) as sdk:
        yield sdk


def stats(upstream: Proc) -> dict[str, Any]:
    result: dict[str, Any] = requests.get(f"{upstream.url}/_stats", timeout=5).json()
    return result


def ask(text: str) -> list[Any]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_non_stream_text(client: openai.OpenAI, anthropic_upstream: Proc) -> None:
    completion = client.chat.completions.create(model="claude", messages=ask("hi"),
                                                max_tokens=100)
    assert_valid(completion.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
    assert completion.choices[0].message.content == "Hello from the Anthropic mock."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (25, 15)
    seen = stats(anthropic_upstream)
    assert seen["last_headers"]["x-api-key"] == API_KEY
    assert seen["last_headers"]["anthropic-version"] == "2023-06-01"
    assert seen["last_body"]["system"] == "Be brief."
    assert seen["last_body"]["max_tokens"] == 100


def test_stream_text_with_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="claude", messages=ask("hi"), stream=True,
        stream_options={"include_usage": True}))
    for chunk in chunks:
        assert_valid(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the Anthropic mock."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 40


def test_tool_calls_assembled_from_streamed_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="claude", messages=ask("weather and time?"),
                                            tools=[WEATHER, TIME], stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        assert_valid(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] = delta.id or slot["id"]
            if delta.function is not None:
                slot["name"] = delta.function.name or slot["name"]
                slot["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [(c["id"], c["name"]) for _, c in sorted(calls.items())] == [
        ("toolu_01A", "get_weather"), ("toolu_01B", "get_time")]
    assert json.loads(calls[0]["arguments"]) == {"location": "San Francisco, CA",
                                                 "unit": "celsius"}
    assert json.loads(calls[1]["arguments"]) == {"timezone": "America/Los_Angeles"}


def test_non_stream_tool_calls(client: openai.OpenAI, anthropic_upstream: Proc) -> None:
    completion = client.chat.completions.create(
        model="claude", messages=ask("weather?"), tools=[WEATHER, TIME],
        tool_choice="required")
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == [
        {"location": "San Francisco, CA", "unit": "celsius"},
        {"timezone": "America/Los_Angeles"}]
    sent = stats(anthropic_upstream)["last_body"]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]


@pytest.mark.parametrize("stream", [False, True])
def test_overloaded_is_a_503(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="claude", messages=ask("overload please"),
                                       stream=stream)
    assert info.value.status_code == 503
    assert info.value.code == "upstream_overloaded"


def test_mid_stream_error_event_reaches_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="claude", messages=ask("midstream-error"),
                                            stream=True)
    received = []
    with stream, pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "Hello"
    assert "Internal server error" in info.value.message


def test_oauth_token_is_fetched_once_for_concurrent_requests(gateway: Proc,
                                                             anthropic_upstream: Proc) -> None:
    """50 simultaneous requests through one gevent worker share one token request."""
    before = stats(anthropic_upstream)["token_requests"]

    def one(i: int) -> str:
        with sdk_client(gateway) as sdk:
            reply = sdk.chat.completions.create(model="claude-oauth", messages=ask(f"hi {i}"))
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    assert answers == ["Hello from the Anthropic mock."] * 50
    seen = stats(anthropic_upstream)
    assert seen["token_requests"] == before + 1
    assert seen["last_headers"]["authorization"].startswith("Bearer mock-token-")
    assert seen["last_headers"]["ai-resource-group"] == "default"
    assert "x-api-key" not in seen["last_headers"]
