"""Anthropic Messages request -> chat completion body: mapping, refusals, validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.errors import InvalidRequestError
from app.providers.anthropic import to_anthropic_request
from app.surfaces.messages_request import messages_to_chat
from tests.unit.surfaces.gateway import assert_routable

HELLO = {"role": "user", "content": "Hello"}
PNG = "iVBORw0KGgo="
WEATHER = {"name": "get_weather", "description": "Weather at a place",
           "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                            "required": ["location"]}}
CHAT_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": WEATHER["input_schema"],
    "description": "Weather at a place"}}


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [HELLO])
    chat = messages_to_chat({"model": "claude-x", "max_tokens": 256, **body})
    assert_routable(chat)
    return chat


def test_minimal_request() -> None:
    assert translate() == {"model": "claude-x", "max_completion_tokens": 256,
                           "messages": [{"role": "user", "content": "Hello"}]}


@pytest.mark.parametrize(("body", "expected"), [
    ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "top_p": 0.9}),
    ({"temperature": 1}, {"temperature": 1}),
    ({"stop_sequences": ["END", "###"]}, {"stop": ["END", "###"]}),
    ({"metadata": {"user_id": "user-42"}}, {"user": "user-42"}),
    ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
     {"response_format": {"type": "json_schema", "json_schema": {
         "name": "output", "schema": {"type": "object"}, "strict": True}}}),
])
def test_options(body: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate(**body)
    assert {k: out[k] for k in expected} == expected


@pytest.mark.parametrize("body", [
    {"top_k": 40},
    {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    {"thinking": {"type": "adaptive"}},
    {"thinking": {"type": "disabled"}},
    {"output_config": {"effort": "high"}},
    {"cache_control": {"type": "ephemeral"}},
    {"service_tier": "auto", "context_management": {"edits": []}},
    {"stream": False, "stop_sequences": [], "metadata": {}},
    {"tool_choice": {"type": "auto"}},  # no tools: chat refuses a tool_choice alone
])
def test_dropped_fields_leave_the_minimal_request(body: dict[str, Any]) -> None:
    assert translate(**body) == translate()


@pytest.mark.parametrize(("system", "text"), [
    ("Be brief.", "Be brief."),
    ([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
      {"type": "text", "text": "Use French."}], "Be brief.\n\nUse French."),
])
def test_system_prompt_is_the_first_message(system: Any, text: str) -> None:
    assert translate(system=system)["messages"][0] == {"role": "system", "content": text}


def test_an_empty_system_prompt_sends_no_system_message() -> None:
    assert translate(system=[])["messages"] == [{"role": "user", "content": "Hello"}]


def test_user_content_blocks() -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "title": "report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "plain notes"}},
        {"type": "text", "text": ""},  # empty text is dropped (Anthropic refuses it)
    ]
    assert translate(messages=[{"role": "user", "content": content}])["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "report.pdf",
                                      "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "text", "text": "plain notes"}]}]


def test_a_single_text_block_becomes_a_string() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert translate(messages=messages)["messages"] == [{"role": "user", "content": "Hi"}]


def test_tool_round_trip_in_order() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Two calls.", "signature": "sig"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather",
             "input": {"location": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "station offline"}]},
            {"type": "text", "text": "Also, which is warmer?"}]},
    ]
    assert translate(messages=messages, tools=[WEATHER])["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
            {"id": "toolu_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station offline"},
        {"role": "user", "content": "Also, which is warmer?"},
    ]


def test_images_in_a_tool_result_follow_the_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}
    messages = [
        HELLO,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "screenshot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "Done."}, image]}]},
    ]
    assert translate(messages=messages)["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Done."},
        {"role": "user", "content": [
            {"type": "text", "text": "Attachments returned by tool call toolu_1:"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    ]


def test_an_assistant_turn_of_only_thinking_is_left_out() -> None:
    messages = [HELLO, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "opaque"}]}, {"role": "user", "content": "Go"}]
    assert [m["content"] for m in translate(messages=messages)["messages"]] == ["Hello", "Go"]


def test_a_final_assistant_message_is_sent_as_a_turn() -> None:
    messages = [HELLO, {"role": "assistant", "content": "The answer is"}]
    assert translate(messages=messages)["messages"][-1] == {"role": "assistant",
                                                             "content": "The answer is"}


@pytest.mark.parametrize(("choice", "expected", "parallel"), [
    ({"type": "auto"}, "auto", None),
    ({"type": "any"}, "required", None),
    ({"type": "none"}, "none", None),
    ({"type": "tool", "name": "get_weather"},
     {"type": "function", "function": {"name": "get_weather"}}, None),
    ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ({"type": "any", "disable_parallel_tool_use": False}, "required", None),
    (None, None, None),
])
def test_tools_and_tool_choice(choice: Any, expected: Any, parallel: Any) -> None:
    out = translate(tools=[WEATHER, {"name": "noop", "input_schema": {"type": "object"},
                                     "strict": True, "cache_control": {"type": "ephemeral"}}],
                    tool_choice=choice)
    assert out["tools"] == [CHAT_WEATHER, {"type": "function", "function": {
        "name": "noop", "parameters": {"type": "object"}, "strict": True}}]
    assert out.get("tool_choice") == expected
    assert out.get("parallel_tool_calls") == parallel


@pytest.mark.parametrize(("change", "param"), [
    ({"model": None}, "model"),
    ({"model": ""}, "model"),
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "100"}, "max_tokens"),
    ({"temperature": 1.5}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"messages": None}, "messages"),
    ({"messages": "Hello"}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "messages"),
    ({"messages": [{"role": "system", "content": "Be brief."}, HELLO]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "file", "file_id": "file_1"}}]}]}, "messages.0.content.0.source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png"}}]}]}, "messages.0.content.0.source.data"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {
        "type": "url", "url": "https://example.com/a.pdf"}}]}]},
     "messages.0.content.0.source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "search_result"}]}]},
     "messages.0.content.0.type"),
    ({"messages": [HELLO, {"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}]}]},
     "messages.1.content.0.type"),
    ({"messages": [HELLO, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": "{}"}]}]},
     "messages.1.content.0.input"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
     "messages.0.content.0.tool_use_id"),
    ({"system": [{"type": "image"}]}, "system.0.type"),
    ({"system": 3}, "system"),
    ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools.0.type"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
    ({"tools": [{"input_schema": {}}]}, "tools.0.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice.type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "auto", "disable_parallel_tool_use": 1}},
     "tool_choice.disable_parallel_tool_use"),
    ({"metadata": {"user_id": "u", "session": "s"}}, "metadata.session"),
    ({"metadata": {"user_id": 7}}, "metadata.user_id"),
    ({"stream": "yes"}, "stream"),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "on"}}, "thinking.type"),
    ({"output_config": {"format": {"type": "xml"}}}, "output_config.format.type"),
    ({"container": "container_1"}, "container"),
    ({"mcp_servers": []}, "mcp_servers"),
    ({"n": 2}, "n"),
])
def test_invalid_or_untranslatable_requests_are_400(change: dict[str, Any], param: str) -> None:
    body = {"model": "claude-x", "max_tokens": 256, "messages": [HELLO], **change}
    before = copy.deepcopy(body)
    with pytest.raises(InvalidRequestError) as info:
        messages_to_chat({k: v for k, v in body.items() if v is not None})
    assert (info.value.status, info.value.param) == (400, param)
    assert info.value.message
    assert body == before  # the request is never modified


@pytest.mark.parametrize("request_body", [
    {"model": "m", "max_tokens": 100, "messages": [HELLO]},
    {"model": "m", "max_tokens": 100, "system": "Be brief.", "temperature": 0.5, "top_p": 0.9,
     "stop_sequences": ["END"], "metadata": {"user_id": "u1"}, "stream": True,
     "messages": [HELLO]},
    {"model": "m", "max_tokens": 100, "tools": [WEATHER],
     "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
     "messages": [
         {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
         {"role": "assistant", "content": [
             {"type": "text", "text": "Checking."},
             {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
              "input": {"location": "Paris"}}]},
         {"role": "user", "content": [
             {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
             {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                          "data": PNG}}]}]},
])
def test_an_anthropic_upstream_receives_what_the_client_sent(request_body: dict[str, Any]
                                                              ) -> None:
    """Messages in -> chat -> the Anthropic provider's translation gives the request back."""
    chat = messages_to_chat(request_body)
    again = to_anthropic_request(chat, model="m")
    expected = copy.deepcopy(request_body)
    for message in expected["messages"]:  # the provider always sends blocks
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
    assert again == expected


def test_a_claude_code_style_request() -> None:
    """The shape an agent such as Claude Code sends: cached system blocks, JSON-Schema tools,
    thinking, a session id, and tool results given back as text blocks."""
    read_tool = {"name": "Read", "description": "Reads a file",
                 "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#",
                                  "type": "object", "additionalProperties": False,
                                  "properties": {"file_path": {"type": "string"}},
                                  "required": ["file_path"]}}
    out = translate(
        max_tokens=32000, temperature=1, stream=True, tools=[read_tool],
        thinking={"type": "enabled", "budget_tokens": 4000},
        metadata={"user_id": "user_abc_account__session_1234"},
        system=[{"type": "text", "text": "You are an agent.",
                 "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Work in /repo."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Read setup.py",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read it.", "signature": "EqQB"},
                {"type": "tool_use", "id": "toolu_01", "name": "Read",
                 "input": {"file_path": "/repo/setup.py"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01",
                 "content": [{"type": "text", "text": "from setuptools import setup"}]}]}])
    assert out == {
        "model": "claude-x", "max_completion_tokens": 32000, "temperature": 1,
        "stream": True, "stream_options": {"include_usage": True},
        "user": "user_abc_account__session_1234",
        "tools": [{"type": "function", "function": {
            "name": "Read", "description": "Reads a file",
            "parameters": read_tool["input_schema"]}}],
        "messages": [
            {"role": "system", "content": "You are an agent.\n\nWork in /repo."},
            {"role": "user", "content": "Read setup.py"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {
                    "name": "Read", "arguments": '{"file_path":"/repo/setup.py"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_01",
             "content": "from setuptools import setup"}]}
