"""Anthropic translation (request, response, stream, errors) and the provider over `responses`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from flask.testing import FlaskClient

from app import create_app
from app.errors import GatewayError, InvalidRequestError
from app.providers.anthropic import to_anthropic_request
from app.providers.anthropic_answers import anthropic_error, to_openai_completion
from app.providers.anthropic_stream import AnthropicStreamTranslator
from app.providers.base import ChatStream
from app.settings import Deployment
from tests import anthropic_fixtures as fx
from tests.conftest import AUTH, SettingsFactory
from tests.openai_spec import assert_valid
from tests.unit.test_openai_provider import sse_data

API_BASE = "http://anthropic.test/v1"
URL = f"{API_BASE}/messages"
DEPLOYMENT = Deployment(id="claude#0", name="claude", provider="anthropic", model=fx.MODEL,
                        api_base=API_BASE)
USER = {"role": "user", "content": "Hello"}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather at a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [USER])
    return to_anthropic_request({"model": "claude", **body}, model=fx.MODEL)


# --- request ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ({}, {"model": fx.MODEL, "max_tokens": 4096,
          "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]}),
    ({"max_tokens": 50}, {"max_tokens": 50}),
    ({"max_completion_tokens": 60, "max_tokens": 50}, {"max_tokens": 60}),
    ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3, "top_p": 0.9}),
    ({"stop": "END"}, {"stop_sequences": ["END"]}),
    ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
    ({"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
    ({"stream": True, "stream_options": {"include_usage": True}}, {"stream": True}),
    ({"messages": [{"role": "system", "content": "Be brief."},
                   {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                   USER]},
     {"system": "Be brief.\n\nUse French.",
      "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]}),
    ({"messages": [USER, {"role": "user", "content": "again"}]},
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                                {"type": "text", "text": "again"}]}]}),
    ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "text", "text": "What is this?"},
         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                      "data": "iVBORw0KGgo="}},
         {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}}]}]}),
    ({"response_format": {"type": "json_object"}},
     {"system": "Respond with a single valid JSON object and nothing else: no prose, "
                "no code fences."}),
    ({"frequency_penalty": 1, "seed": 3, "logprobs": False, "n": 1}, {"max_tokens": 4096}),
])
def test_request_translation(body: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translate(**body)
    assert {k: out.get(k) for k in expected} == expected
    for dropped in ("frequency_penalty", "seed", "logprobs", "n", "stream_options", "user"):
        assert dropped not in out


def test_json_schema_becomes_a_system_instruction() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = translate(messages=[{"role": "system", "content": "Sys."}, USER],
                    response_format={"type": "json_schema",
                                     "json_schema": {"name": "x", "schema": schema}})
    assert out["system"].startswith("Sys.\n\nRespond with a single valid JSON object")
    assert json.dumps(schema, separators=(",", ":")) in out["system"]


@pytest.mark.parametrize(("tool_choice", "parallel", "expected"), [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None,
     {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tools_and_tool_choice(tool_choice: Any, parallel: Any, expected: Any) -> None:
    extra = {k: v for k, v in (("tool_choice", tool_choice), ("parallel_tool_calls", parallel))
             if v is not None}
    out = translate(tools=[WEATHER_TOOL], **extra)
    assert out["tools"] == [{"name": "get_weather", "description": "Weather at a place",
                             "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert out.get("tool_choice") == expected


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    out = translate(tools=[{"type": "function", "function": {"name": "now"}}])
    assert out["tools"] == [{"name": "now",
                             "input_schema": {"type": "object", "properties": {}}}]


def test_tool_round_trip_messages() -> None:
    """Assistant tool_calls -> tool_use; consecutive tool results -> one user turn."""
    messages = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "toolu_2", "type": "function",
             "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"},
        {"role": "tool", "tool_call_id": "toolu_2",
         "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "Thanks, and?"},
        {"role": "assistant", "content": ""},  # empty: dropped, Anthropic rejects empty text
    ]
    out = translate(messages=messages, tools=[WEATHER_TOOL])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "12:00"}]},
            {"type": "text", "text": "Thanks, and?"}]},
    ]


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": "f"}]}]},
     "messages[0].tool_calls[0].function"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ({"messages": [{"role": "system", "content": "Be brief."}]}, "messages"),
    ({"temperature": 1.5}, "temperature"),  # OpenAI's 0-2, Anthropic's 0-1: no silent clamp
])
def test_untranslatable_requests_are_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        translate(**body)
    assert info.value.status == 400 and info.value.param == param


# --- response --------------------------------------------------------------------------------

def test_text_response() -> None:
    out = to_openai_completion(fx.message([{"type": "text", "text": "Hi there!"}]), created=1)
    assert_valid(out, "CreateChatCompletionResponse")
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Hi there!",
                                           "refusal": None}}]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}
    assert out["model"] == fx.MODEL and out["created"] == 1


def test_tool_use_response() -> None:
    msg = fx.message([{"type": "text", "text": "Checking."},
                      {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                       "input": {"location": "San Francisco, CA"}}], "tool_use")
    out = to_openai_completion(msg)
    assert_valid(out, "CreateChatCompletionResponse")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_9" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA"}


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
    ("something_new", "stop"),
])
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    out = to_openai_completion(fx.message([{"type": "text", "text": "x"}], stop_reason))
    assert out["choices"][0]["finish_reason"] == finish


def test_cache_tokens_count_as_prompt_tokens_and_cached_tokens() -> None:
    out = to_openai_completion(fx.message([{"type": "text", "text": "x"}],
                                          cache_read_input_tokens=100,
                                          cache_creation_input_tokens=30))
    assert_valid(out, "CreateChatCompletionResponse")
    assert out["usage"] == {"prompt_tokens": 142, "completion_tokens": 6, "total_tokens": 148,
                            "prompt_tokens_details": {"cached_tokens": 100}}


# --- stream ----------------------------------------------------------------------------------

def run_stream(events: list[dict[str, Any]], *, include_usage: bool = False,
               chunk_size: int | None = None) -> tuple[list[Any], AnthropicStreamTranslator]:
    raw = fx.sse(events)
    stream = ChatStream()
    translator = AnthropicStreamTranslator(stream, deployment=DEPLOYMENT,
                                           include_usage=include_usage, created=1)
    size = chunk_size or len(raw)
    out = b"".join(translator.feed(raw[i:i + size]) for i in range(0, len(raw), size))
    return (sse_data(out) if out else []), translator


def assert_valid_chunks(events: list[Any]) -> None:
    for event in events:
        if event != "[DONE]":
            assert_valid(event, "CreateChatCompletionStreamResponse")


def test_text_stream() -> None:
    events, translator = run_stream(fx.text_stream("Hello", "!"))
    assert_valid_chunks(events)
    assert [e["choices"][0]["delta"] for e in events[:-1]] == [
        {"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": "!"}, {}]
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]] == [None, None, None, "stop"]
    assert events[-1] == "[DONE]"
    assert events[0]["id"] == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    assert "usage" not in events[0]
    assert translator.stream.completed and translator.error is None
    usage = translator.stream.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (25, 15)


def test_stream_split_at_every_byte_gives_the_same_events() -> None:
    whole, _ = run_stream(fx.two_tools_stream())
    split, _ = run_stream(fx.two_tools_stream(), chunk_size=1)
    assert split == whole


def test_include_usage_adds_a_final_usage_chunk() -> None:
    events = fx.text_stream("Hi")
    events[0] = fx.message_start(10, cache_read_input_tokens=5)
    out, _ = run_stream(events, include_usage=True)
    assert_valid_chunks(out)
    assert all(e["usage"] is None for e in out[:-2])
    assert out[-2]["choices"] == []
    assert out[-2]["usage"] == {"prompt_tokens": 15, "completion_tokens": 15,
                                "total_tokens": 30,
                                "prompt_tokens_details": {"cached_tokens": 5}}
    assert out[-1] == "[DONE]"


def test_two_tools_with_interleaved_argument_deltas() -> None:
    events, translator = run_stream(fx.two_tools_stream())
    assert_valid_chunks(events)
    calls: dict[int, dict[str, Any]] = {}
    for event in events[:-1]:
        for call in event["choices"][0]["delta"].get("tool_calls", []):
            slot = calls.setdefault(call["index"], {"id": None, "name": None, "args": ""})
            slot["id"] = call.get("id") or slot["id"]
            slot["name"] = call.get("function", {}).get("name") or slot["name"]
            slot["args"] += call.get("function", {}).get("arguments", "")
    assert sorted(calls) == [0, 1]
    assert (calls[0]["id"], calls[0]["name"]) == ("toolu_01A", "get_weather")
    assert json.loads(calls[0]["args"]) == {"location": "San Francisco, CA", "unit": "celsius"}
    assert (calls[1]["id"], calls[1]["name"]) == ("toolu_01B", "get_time")
    assert json.loads(calls[1]["args"]) == {"timezone": "America/Los_Angeles"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.stream.completed


def test_mid_stream_error_event_stops_translation() -> None:
    events = [fx.message_start(), fx.text_start(), fx.text_delta("Hel"),
              fx.error_event("overloaded_error", "Overloaded"), fx.text_delta("never")]
    out, translator = run_stream(events)
    assert [e["choices"][0]["delta"] for e in out] == [{"role": "assistant", "content": ""},
                                                       {"content": "Hel"}]
    assert translator.error is not None and translator.error.status == 503
    assert not translator.stream.completed


@pytest.mark.parametrize("bad", [
    b"data: {not json}\n\n",
    b'data: ["a list"]\n\n',
    b'data: {"type": "content_block_start", "index": 0, "content_block": "text"}\n\n',
])
def test_malformed_events_end_the_stream_with_a_502(bad: bytes) -> None:
    stream = ChatStream()
    translator = AnthropicStreamTranslator(stream, deployment=DEPLOYMENT, include_usage=False)
    first = translator.feed(fx.sse([fx.message_start()]) + bad + fx.sse([fx.text_delta("x")]))
    assert len(sse_data(first)) == 1  # what came before the bad event is still sent
    assert translator.error is not None and translator.error.status == 502
    assert translator.error.code == "upstream_invalid_response"


def test_ping_and_unknown_events_produce_nothing() -> None:
    out, translator = run_stream([fx.PING, {"type": "some_future_event", "x": 1},
                                  fx.block_stop()])
    assert out == [] and translator.error is None


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("error_type", "status", "code"), [
    ("invalid_request_error", 400, "invalid_request_error"),
    ("authentication_error", 502, "upstream_auth_error"),
    ("permission_error", 502, "upstream_auth_error"),
    ("not_found_error", 404, "not_found"),
    ("request_too_large", 413, "request_too_large"),
    ("rate_limit_error", 429, "upstream_rate_limited"),
    ("api_error", 500, "upstream_api_error"),
    ("overloaded_error", 503, "upstream_overloaded"),
    ("brand_new_error", 502, "upstream_error"),
])
def test_error_mapping(error_type: str, status: int, code: str) -> None:
    err = anthropic_error(error_type, "details", status=None, deployment=DEPLOYMENT)
    assert (err.status, err.code) == (status, code)
    assert_valid(err.to_dict(), "ErrorResponse")


# --- provider over HTTP (responses) ----------------------------------------------------------

@pytest.fixture
def claude_client(make_settings: SettingsFactory, tmp_path: Path) -> FlaskClient:
    settings = make_settings([
        {"name": "claude", "provider": "anthropic", "model": fx.MODEL, "api_base": API_BASE,
         "api_key": "sk-ant-secret", "headers": {"AI-Resource-Group": "rg-1"},
         "default_max_tokens": 1000},
        {"name": "claude-old", "provider": "anthropic", "model": fx.MODEL, "api_base": API_BASE,
         "anthropic_version": "2023-01-01"},
    ])
    app = create_app(settings)
    app.config["TESTING"] = True
    return app.test_client()


def chat(client: FlaskClient, model: str = "claude", **body: Any) -> Any:
    return client.post("/v1/chat/completions", headers=AUTH,
                       json={"model": model, "messages": [USER], **body})


@responses.activate
def test_provider_non_stream_sends_anthropic_headers_and_body(claude_client: FlaskClient) -> None:
    responses.post(URL, json=fx.message([{"type": "text", "text": "Hi!"}]))
    resp = chat(claude_client, user="u1")
    assert resp.status_code == 200
    assert_valid(resp.get_json(), "CreateChatCompletionResponse")
    assert resp.get_json()["choices"][0]["message"]["content"] == "Hi!"
    sent = responses.calls[0].request
    assert sent.headers["x-api-key"] == "sk-ant-secret"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["AI-Resource-Group"] == "rg-1"
    assert "Authorization" not in sent.headers
    body = orjson.loads(sent.body)
    assert body["max_tokens"] == 1000 and body["metadata"] == {"user_id": "u1"}

    chat(claude_client, "claude-old")
    assert responses.calls[1].request.headers["anthropic-version"] == "2023-01-01"
    assert "x-api-key" not in responses.calls[1].request.headers


@responses.activate
def test_provider_stream(claude_client: FlaskClient) -> None:
    responses.post(URL, body=fx.sse(fx.text_stream("Hel", "lo")),
                   content_type="text/event-stream")
    resp = chat(claude_client, stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    events = sse_data(resp.data)
    assert_valid_chunks(events)
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2]
                   if e["choices"]) == "Hello"
    assert events[-2]["usage"]["completion_tokens"] == 15 and events[-1] == "[DONE]"
    assert orjson.loads(responses.calls[0].request.body)["stream"] is True


@responses.activate
def test_error_event_before_any_output_is_an_http_error(claude_client: FlaskClient) -> None:
    responses.post(URL, body=fx.sse([fx.error_event()]), content_type="text/event-stream")
    resp = chat(claude_client, stream=True)
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "upstream_overloaded"


@responses.activate
def test_error_event_mid_stream_ends_the_stream_with_an_error_event(
        claude_client: FlaskClient) -> None:
    events = [fx.message_start(), fx.text_start(), fx.text_delta("Hel"), fx.error_event()]
    responses.post(URL, body=fx.sse(events), content_type="text/event-stream")
    out = sse_data(chat(claude_client, stream=True).data)
    assert out[1]["choices"][0]["delta"] == {"content": "Hel"}
    assert out[-1]["error"]["code"] == "upstream_overloaded"
    assert_valid(out[-1], "ErrorResponse")


@responses.activate
def test_truncated_stream_gets_an_error_event(claude_client: FlaskClient) -> None:
    responses.post(URL, body=fx.sse(fx.text_stream("Hi")[:-2]), content_type="text/event-stream")
    out = sse_data(chat(claude_client, stream=True).data)
    assert out[-1]["error"]["code"] == "upstream_stream_truncated"


@pytest.mark.parametrize(("status", "error_type", "expected"), [
    (400, "invalid_request_error", 400), (401, "authentication_error", 502),
    (403, "permission_error", 502), (404, "not_found_error", 404),
    (429, "rate_limit_error", 429), (500, "api_error", 500), (529, "overloaded_error", 503),
])
@pytest.mark.parametrize("stream", [False, True])
@responses.activate
def test_http_errors(claude_client: FlaskClient, status: int, error_type: str, expected: int,
                     stream: bool) -> None:
    responses.post(URL, status=status, headers={"Retry-After": "3"},
                   json={"type": "error", "error": {"type": error_type, "message": "nope"}})
    resp = chat(claude_client, stream=stream)
    assert resp.status_code == expected
    body = resp.get_json()
    assert_valid(body, "ErrorResponse")
    assert "nope" in body["error"]["message"]
    assert "sk-ant-secret" not in resp.get_data(as_text=True)
    assert (resp.headers.get("Retry-After") == "3") == (expected in (429, 503))


@responses.activate
def test_invalid_request_is_rejected_before_calling_the_upstream(
        claude_client: FlaskClient) -> None:
    resp = chat(claude_client, n=3)
    assert resp.status_code == 400 and resp.get_json()["error"]["param"] == "n"
    assert len(responses.calls) == 0


@pytest.mark.parametrize("answer", [
    {"hello": "world"},
    {"type": "message", "content": ["a string, not a block"]},
    {"type": "message", "content": "not a list of blocks"},
])
@responses.activate
def test_malformed_answers_are_502(claude_client: FlaskClient, answer: Any) -> None:
    responses.post(URL, json=answer)
    resp = chat(claude_client)
    assert resp.status_code == 502
    assert resp.get_json()["error"]["code"] == "upstream_invalid_response"


def test_gateway_error_of_a_stream_error_event_is_sse_renderable() -> None:
    _, translator = run_stream([fx.message_start(), fx.error_event("api_error", "boom")])
    assert isinstance(translator.error, GatewayError)
    assert translator.error.to_dict()["error"]["message"] == "Anthropic: boom"


def test_usage_is_recorded_at_message_delta_even_if_the_stream_is_cut() -> None:
    events = fx.text_stream("Hi")[:-1]  # no message_stop
    _, translator = run_stream(events)
    usage = translator.stream.usage
    assert not translator.stream.completed
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (25, 15)


@responses.activate
def test_a_request_anthropic_would_refuse_is_answered_400_without_calling_it(
        claude_client: FlaskClient) -> None:
    for body in ({"messages": [{"role": "system", "content": "only me"}]}, {"temperature": 1.2}):
        resp = claude_client.post("/v1/chat/completions", headers=AUTH,
                                  json={"model": "claude", "messages": [USER], **body})
        error = resp.get_json()["error"]
        assert resp.status_code == 400 and error["param"] in ("messages", "temperature")
    assert len(responses.calls) == 0
