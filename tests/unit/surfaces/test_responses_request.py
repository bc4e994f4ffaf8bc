"""OpenAI Responses request -> chat completion body: mapping, refusals, validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.errors import InvalidRequestError
from app.surfaces.responses_request import input_items, responses_to_chat
from tests.unit.surfaces.gateway import assert_routable

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather at a place",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"], "additionalProperties": False},
           "strict": True}
CHAT_WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place",
    "parameters": WEATHER["parameters"], "strict": True}}
IMAGE_URL = "https://example.com/cat.jpg"


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("input", "Hello")
    chat = responses_to_chat({"model": "gpt-x", **body})
    assert_routable(chat)
    return chat


def test_minimal_request_and_instructions() -> None:
    assert translate() == {"model": "gpt-x", "messages": [{"role": "user", "content": "Hello"}]}
    assert translate(instructions="Be brief.")["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(("body", "expected"), [
    ({"max_output_tokens": 500}, {"max_completion_tokens": 500}),
    ({"temperature": 1.5, "top_p": 0.5}, {"temperature": 1.5, "top_p": 0.5}),
    ({"reasoning": {"effort": "high", "summary": "auto"}}, {"reasoning_effort": "high"}),
    ({"user": "u1", "safety_identifier": "s1", "prompt_cache_key": "k1",
      "prompt_cache_retention": "24h", "service_tier": "flex"},
     {"user": "u1", "safety_identifier": "s1", "prompt_cache_key": "k1",
      "prompt_cache_retention": "24h", "service_tier": "flex"}),
    ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ({"text": {"format": {"type": "json_object"}}},
     {"response_format": {"type": "json_object"}}),
    ({"text": {"format": {"type": "json_schema", "name": "person", "strict": True,
                          "schema": {"type": "object"}, "description": "A person"},
               "verbosity": "low"}},
     {"response_format": {"type": "json_schema", "json_schema": {
         "name": "person", "schema": {"type": "object"}, "strict": True,
         "description": "A person"}}, "verbosity": "low"}),
])
def test_options(body: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate(**body)
    assert {k: out[k] for k in expected} == expected


@pytest.mark.parametrize("body", [
    {"metadata": {"session": "s1"}, "store": False, "previous_response_id": None},
    {"include": ["reasoning.encrypted_content"], "stream_options": {"include_obfuscation": False}},
    {"max_tool_calls": 3, "background": False, "truncation": "disabled"},
    {"text": {"format": {"type": "text"}}},
    {"reasoning": {"summary": "auto"}},
    {"tool_choice": "auto", "parallel_tool_calls": False},  # no tools: chat would refuse them
    {"input": [{"type": "reasoning", "id": "rs_1", "summary": []},
               {"role": "user", "content": "Hello"}]},
])
def test_fields_not_sent_upstream(body: dict[str, Any]) -> None:
    assert translate(**body) == translate()


def test_message_items_and_content_parts() -> None:
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"type": "message", "role": "system",
         "content": [{"type": "input_text", "text": "Be brief."},
                     {"type": "input_text", "text": "Be kind."}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"},
            {"type": "input_file", "filename": "a.pdf",
             "file_data": "data:application/pdf;base64,JVBERi0="}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
    ]
    assert translate(input=items)["messages"] == [
        {"role": "developer", "content": "Answer in French."},
        {"role": "system", "content": "Be brief.\nBe kind."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                      "filename": "a.pdf"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "Thanks"},
    ]


def test_function_calls_and_outputs() -> None:
    items = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"location":"Paris"}', "status": "completed"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather",
         "arguments": '{"location":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18°C"},
        {"type": "function_call_output", "call_id": "call_2",
         "output": [{"type": "input_text", "text": "21°C"},
                    {"type": "input_image", "image_url": IMAGE_URL}]},
        {"type": "function_call", "call_id": "call_3", "name": "get_weather",
         "arguments": '{"location":"Oslo"}'},
    ]
    assert translate(input=items, tools=[WEATHER])["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21°C"},
        {"role": "user", "content": [
            {"type": "text", "text": "Attachments returned by tool call call_2:"},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'}}]},
    ]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ({"type": "function", "name": "get_weather"},
     {"type": "function", "function": {"name": "get_weather"}}),
    ({"type": "allowed_tools", "mode": "required",
      "tools": [{"type": "function", "name": "get_weather"}]},
     {"type": "allowed_tools", "allowed_tools": {
         "mode": "required", "tools": [{"type": "function",
                                        "function": {"name": "get_weather"}}]}}),
])
def test_tools_and_tool_choice(choice: Any, expected: Any) -> None:
    out = translate(tools=[WEATHER, {"type": "function", "name": "noop"}], tool_choice=choice,
                    parallel_tool_calls=False)
    assert out["tools"] == [CHAT_WEATHER, {"type": "function", "function": {"name": "noop"}}]
    assert (out["tool_choice"], out["parallel_tool_calls"]) == (expected, False)


def test_input_items_normalizes_a_string() -> None:
    assert input_items({"input": "Hi"}) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]


@pytest.mark.parametrize(("change", "param"), [
    ({"model": None}, "model"),
    ({"input": None}, "input"),
    ({"input": 5}, "input"),
    ({"input": ["Hello"]}, "input[0]"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [WEATHER, {"type": "file_search", "vector_store_ids": ["vs_1"]}]},
     "tools[1].type"),
    ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
    ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),
    ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"context_management": [{"type": "compaction"}]}, "context_management"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"content": "no role and no type"}]}, "input[0].type"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}]},
     "input[0].content[0].file_data"),
    ({"input": [{"role": "system", "content": [{"type": "input_image",
                                                 "image_url": IMAGE_URL}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
     "input[0].output"),
    ({"max_output_tokens": 8}, "max_output_tokens"),
    ({"max_output_tokens": 2**31}, "max_output_tokens"),  # the chat API's bound too
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": "high"}, "top_p"),
    ({"parallel_tool_calls": "yes", "tools": [WEATHER]}, "parallel_tool_calls"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),  # checked without tools too
    ({"metadata": {"n": 1}}, "metadata"),
    ({"store": "no"}, "store"),
    ({"stream": 1}, "stream"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"reasoning": {"effort": 3}}, "reasoning.effort"),
    ({"previous_response_id": 12}, "previous_response_id"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
])
def test_invalid_or_untranslatable_requests_are_400(change: dict[str, Any], param: str) -> None:
    body = {"model": "gpt-x", "input": "Hello", **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = copy.deepcopy(body)
    with pytest.raises(InvalidRequestError) as info:
        responses_to_chat(body)
    err = info.value
    assert (err.status, err.param) == (400, param)
    assert err.to_dict()["error"]["type"] == "invalid_request_error" and err.message
    assert body == before  # the request is never modified


def test_a_codex_style_request() -> None:
    """The shape a coding agent sends with ``store: false``: the whole conversation as items
    (reasoning included), function tools, encrypted reasoning asked for, a cache key."""
    shell = {"type": "function", "name": "shell", "description": "Runs a command",
             "strict": False, "parameters": {"type": "object", "properties": {
                 "command": {"type": "array", "items": {"type": "string"}}},
                 "required": ["command"]}}
    out = translate(
        instructions="You are a coding agent.", tools=[shell], tool_choice="auto",
        parallel_tool_calls=False, reasoning={"effort": "medium", "summary": "auto"},
        store=False, stream=True, include=["reasoning.encrypted_content"],
        prompt_cache_key="session-1",
        input=[
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "List the files."}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
             "arguments": '{"command":["ls"]}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "README.md"}])
    assert out == {
        "model": "gpt-x", "stream": True, "stream_options": {"include_usage": True},
        "reasoning_effort": "medium", "prompt_cache_key": "session-1",
        "tools": [{"type": "function", "function": {
            "name": "shell", "description": "Runs a command",
            "parameters": shell["parameters"], "strict": False}}],
        "tool_choice": "auto", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "List the files."},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "shell", "arguments": '{"command":["ls"]}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "README.md"}]}
