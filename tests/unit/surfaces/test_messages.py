"""Chat completion -> Anthropic message, and gateway errors as Anthropic errors, both checked
with the ``anthropic`` SDK's own types and exception classes."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from app.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientQuotaError,
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)
from app.providers.anthropic_answers import to_openai_completion
from app.surfaces.chat_stream import RelayedStreamError
from app.surfaces.messages import anthropic_error, chat_to_message, stop_reason, tool_use_id
from app.surfaces.messages_request import messages_to_chat
from tests import anthropic_fixtures as afx
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.sdk import Upstream, anthropic_client, assert_no_extra, json_answer

HELLO = {"role": "user", "content": "Hi"}


def message(completion: dict[str, Any], **kwargs: Any) -> Message:
    """Translate, then parse with the SDK's type: a missing or mistyped field fails here."""
    parsed = Message.model_validate(chat_to_message(completion, model="claude-x", **kwargs))
    assert_no_extra(parsed)
    return parsed


def test_text_answer() -> None:
    msg = message(fx.completion("Hello!"), message_id="msg_1")
    assert msg.model_dump(exclude_none=True) == {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}


def test_ids_are_new_for_each_message() -> None:
    first, second = message(fx.completion()), message(fx.completion())
    assert first.id.startswith("msg_") and first.id != second.id


def test_tool_calls_become_tool_use_blocks() -> None:
    msg = message(fx.completion("Checking.", finish="tool_calls", tool_calls=[
        fx.call("call_abc", "get_weather", '{"location": "Paris"}'),
        fx.call("call_def", "noop", "")]))
    assert [b.model_dump(exclude_none=True) for b in msg.content] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_abc", "name": "get_weather",
         "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_def", "name": "noop", "input": {}}]
    assert msg.stop_reason == "tool_use"


@pytest.mark.parametrize(("call_id", "expected"), [
    ("call_abc123", "toolu_abc123"),
    ("toolu_01A09q90qw90lq917835lq9", "toolu_01A09q90qw90lq917835lq9"),
    ("chatcmpl-tool-9f:2", "toolu_chatcmpl-tool-9f2"),
])
def test_tool_use_ids(call_id: str, expected: str) -> None:
    assert tool_use_id(call_id) == expected


def test_an_unusable_call_id_gets_a_fresh_one() -> None:
    assert tool_use_id("call_").startswith("toolu_") and len(tool_use_id("call_")) > 10


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]", '"text"'])
def test_tool_arguments_that_are_not_an_object_are_a_502(arguments: str) -> None:
    with pytest.raises(UpstreamError) as info:
        chat_to_message(fx.completion(None, tool_calls=[fx.call("call_1", "f", arguments)]),
                        model="claude-x")
    assert info.value.status == 502 and "'f'" in info.value.message


@pytest.mark.parametrize(("finish", "tools", "stop_string", "expected"), [
    ("stop", False, None, ("end_turn", None)),
    ("stop", False, "END", ("stop_sequence", "END")),
    ("stop", False, "</s>", ("end_turn", None)),  # a stop the client did not ask for
    ("length", False, None, ("max_tokens", None)),
    ("length", True, None, ("max_tokens", None)),
    ("tool_calls", True, None, ("tool_use", None)),
    ("stop", True, None, ("tool_use", None)),  # servers that finish a tool call with "stop"
    ("function_call", False, None, ("tool_use", None)),
    ("content_filter", False, None, ("refusal", None)),
    (None, False, None, ("end_turn", None)),
    ("something_new", False, None, ("end_turn", None)),
])
def test_stop_reasons(finish: str | None, tools: bool, stop_string: str | None,
                      expected: tuple[str, str | None]) -> None:
    assert stop_reason(finish, tool_calls=tools, stop_string=stop_string,
                       stop_sequences=["END"]) == expected


def test_stop_sequence_from_a_vllm_style_answer_is_checked_by_the_sdk_type() -> None:
    msg = message(fx.completion("Done", stop_reason="END"), stop_sequences=["END"])
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")


def test_refusal_text_with_a_content_filter_finish() -> None:
    body = fx.completion(None, finish="content_filter")
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    msg = message(body)
    assert msg.stop_reason == "refusal"
    assert msg.content[0].type == "text" and msg.content[0].text == "I can't help with that."


def test_cached_tokens_are_cache_reads_and_not_input_tokens() -> None:
    usage = message(fx.completion(usage=fx.CACHED_USAGE)).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens,
            usage.output_tokens) == (36, 64, 0, 20)


def test_an_answer_without_usage_reports_zero() -> None:
    body = fx.completion()
    del body["usage"]
    assert message(body).usage.output_tokens == 0


def test_an_empty_answer_has_no_blocks() -> None:
    assert message(fx.completion("")).content == []


def test_an_anthropic_upstream_answer_comes_back_as_it_was() -> None:
    """Anthropic -> chat (the provider) -> Anthropic (the surface) keeps the message."""
    original = afx.message([{"type": "text", "text": "Let me look."},
                            {"type": "tool_use", "id": "toolu_01T1x", "name": "get_weather",
                             "input": {"location": "Paris"}}], stop_reason="tool_use",
                           cache_read_input_tokens=5, cache_creation_input_tokens=0)
    back = chat_to_message(to_openai_completion(original), model=afx.MODEL,
                           message_id=original["id"])
    assert back == original


# --- errors --------------------------------------------------------------------------------

def sdk_exception(status: int, body: dict[str, Any]) -> anthropic.APIStatusError:
    """What the real SDK raises when the gateway answers ``status`` with ``body``."""
    client = anthropic_client(Upstream(lambda _: json_answer(body, status)))
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-x", max_tokens=10, messages=[HELLO])
    return info.value


@pytest.mark.parametrize(("err", "status", "error_type", "sdk_class"), [
    (InvalidRequestError("Bad.", param="messages"), 400, "invalid_request_error",
     anthropic.BadRequestError),
    (AuthenticationError("Invalid API key."), 401, "authentication_error",
     anthropic.AuthenticationError),
    (InsufficientQuotaError("Budget spent."), 402, "billing_error",
     anthropic.PaymentRequiredError),
    (PermissionDeniedError("Not allowed."), 403, "permission_error",
     anthropic.PermissionDeniedError),
    (ModelNotFoundError("claude-nope"), 404, "not_found_error", anthropic.NotFoundError),
    (PayloadTooLargeError("Too big."), 413, "request_too_large",
     anthropic.ContentTooLargeError),
    (RateLimitError("Slow down."), 429, "rate_limit_error", anthropic.RateLimitError),
    (UpstreamHTTPError(429, {"error": {"message": "Rate limit", "type": "tokens",
                                       "code": "rate_limit_exceeded"}}), 429,
     "rate_limit_error", anthropic.RateLimitError),
    (UpstreamHTTPError(400, {"error": {"message": "context_length_exceeded"}}), 400,
     "invalid_request_error", anthropic.BadRequestError),
    (InternalError("Oops."), 500, "api_error", anthropic.InternalServerError),
    (UpstreamError("Bad gateway."), 502, "api_error", anthropic.InternalServerError),
    (UpstreamError("Overloaded.", status=503, code="upstream_overloaded"), 529,
     "overloaded_error", anthropic.OverloadedError),
    (ServiceUnavailableError("Database down."), 529, "overloaded_error",
     anthropic.OverloadedError),
    (UpstreamTimeoutError("Timed out."), 504, "timeout_error", anthropic.GatewayTimeoutError),
])
def test_errors_map_to_anthropic_shapes_and_sdk_classes(
        err: GatewayError, status: int, error_type: str,
        sdk_class: type[anthropic.APIStatusError]) -> None:
    got_status, body = anthropic_error(err)
    assert (got_status, body["type"], body["error"]["type"]) == (status, "error", error_type)
    exc = sdk_exception(got_status, body)
    assert isinstance(exc, sdk_class) and exc.status_code == status
    assert exc.body == body  # the SDK exposes the error object as sent


@pytest.mark.parametrize(("fields", "error_type"), [
    ({"message": "Overloaded", "type": "upstream_error", "code": "upstream_overloaded"},
     "overloaded_error"),
    ({"message": "Slow down", "type": "rate_limit_exceeded", "code": None}, "rate_limit_error"),
    ({"message": "Bad", "type": "invalid_request_error", "code": None},
     "invalid_request_error"),
    ({"message": "Boom", "type": "server_error"}, "api_error"),
    ({"message": "Late", "type": "upstream_error", "code": "upstream_timeout"},
     "timeout_error"),
])
def test_errors_relayed_in_a_chat_stream_map_by_type_and_code(fields: dict[str, Any],
                                                               error_type: str) -> None:
    assert anthropic_error(RelayedStreamError(fields))[1]["error"]["type"] == error_type


def test_a_validation_error_names_the_field_in_the_message() -> None:
    with pytest.raises(InvalidRequestError) as info:
        messages_to_chat({"model": "m", "max_tokens": 10, "temperature": 1.5,
                          "messages": [HELLO]})
    status, body = anthropic_error(info.value)
    assert status == 400
    assert body == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "temperature: Input should be a number between 0 and 1."}}
