"""Chat stream -> Responses SSE, read by the ``openai`` SDK's own stream machinery and checked
event by event against OpenAI's published schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response

from app.errors import UpstreamError
from app.surfaces.chat_stream import iter_translated
from app.surfaces.responses import response_shell
from app.surfaces.responses_stream import ResponsesStreamTranslator
from tests.openai_spec import assert_valid
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.sdk import Upstream, assert_no_extra, openai_client, sse_answer

WEATHER = {"type": "function", "name": "get_weather",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}


def translate(chunks: list[bytes], **body: Any) -> tuple[bytes, ResponsesStreamTranslator]:
    shell = response_shell({"model": "gpt-x", "input": "Hi", **body}, model="gpt-x",
                           response_id="resp_1", created_at=1700000000)
    translator = ResponsesStreamTranslator(shell)
    return b"".join(iter_translated(chunks, translator)), translator


def raw_events(body: bytes) -> list[dict[str, Any]]:
    """Each event's data; its ``event:`` line names its type and it matches the schema."""
    out = []
    for block in body.decode().split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        assert_valid(data, "ResponseStreamEvent")
        out.append(data)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def through_sdk(body: bytes) -> tuple[list[Any], Response]:
    """The events ``responses.stream()`` yields, and its final response."""
    client = openai_client(Upstream(lambda _: sse_answer(body)))
    with client.responses.stream(model="gpt-x", input="Hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    sent = Response.model_validate(raw_events(body)[-1]["response"])
    assert_no_extra(sent, frozenset(("store",)))
    return events, final


def test_text_stream() -> None:
    body, translator = translate(fx.text_stream("Hel", "lo!"))
    assert [e["type"] for e in raw_events(body)] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    events, final = through_sdk(body)
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["Hel", "lo!"]
    assert (final.id, final.status, final.output_text) == ("resp_1", "completed", "Hello!")
    assert final.usage is not None and final.usage.total_tokens == 42
    assert translator.response == raw_events(body)[-1]["response"]  # what gets stored
    assert_valid(translator.response, "Response")


def test_text_then_parallel_function_calls() -> None:
    body, _ = translate(fx.tools_stream("Checking."), tools=[WEATHER])
    events, final = through_sdk(body)
    assert [(item.type, item.status) for item in final.output] == [
        ("message", "completed"), ("function_call", "completed"),
        ("function_call", "completed")]
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.id, c.call_id, c.name, c.arguments) for c in calls] == [
        ("fc_weather1", "call_weather1", "get_weather", '{"location": "Paris"}'),
        ("fc_time2", "call_time2", "get_time", '{"tz": "CET"}')]
    deltas = [(e.output_index, e.delta) for e in events
              if e.type == "response.function_call_arguments.delta"]
    assert deltas == [(1, '{"location":'), (1, ' "Paris"}'), (2, '{"tz": "CET"}')]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(e.item_id, e.arguments) for e in done] == [
        ("fc_weather1", '{"location": "Paris"}'), ("fc_time2", '{"tz": "CET"}')]
    assert final.output_text == "Checking."


def test_usage_with_cached_and_reasoning_tokens() -> None:
    _, final = through_sdk(translate(fx.text_stream("A", usage=fx.CACHED_USAGE))[0])
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.input_tokens_details.cached_tokens,
            final.usage.output_tokens_details.reasoning_tokens) == (100, 64, 8)


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"),
                                                ("content_filter", "content_filter")])
def test_an_incomplete_answer_ends_with_response_incomplete(finish: str, reason: str) -> None:
    body, _ = translate(fx.text_stream("Partial", finish=finish))
    last = raw_events(body)[-1]
    assert last["type"] == "response.incomplete"
    client = openai_client(Upstream(lambda _: sse_answer(body)))
    events = list(client.responses.create(model="gpt-x", input="Hi", stream=True))
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details is not None
    assert (final.response.status, final.response.incomplete_details.reason) == (
        "incomplete", reason)
    assert final.response.output_text == "Partial"
    item_status = "incomplete" if finish == "length" else "completed"
    assert final.response.output[0].status == item_status


@pytest.mark.parametrize(("chunks", "code"), [
    (fx.text_stream("Partial")[:2]
     + fx.sse({"error": {"message": "Rate limited", "type": "tokens",
                         "code": "rate_limit_exceeded", "param": None}}),
     "rate_limit_exceeded"),
    (fx.text_stream("Partial")[:2], "server_error"),  # no [DONE]
    (fx.sse(fx.tool_delta(0, '{"location":', "call_1", "get_weather")), "server_error"),
])
def test_a_failure_is_an_error_event_then_response_failed(chunks: list[bytes], code: str
                                                          ) -> None:
    body, translator = translate(chunks)
    events = raw_events(body)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    client = openai_client(Upstream(lambda _: sse_answer(body)))
    seen = list(client.responses.create(model="gpt-x", input="Hi", stream=True))
    error, failed = seen[-2], seen[-1]
    assert error.type == "error" and error.message
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == code
    # what had arrived is kept, its item marked incomplete
    assert [item.status for item in failed.response.output] == ["incomplete"]
    assert translator.response["status"] == "failed"


def test_the_partial_text_and_arguments_are_in_the_failed_response() -> None:
    body, _ = translate(fx.text_stream("Partial")[:2])
    assert raw_events(body)[-1]["response"]["output"][0]["content"][0]["text"] == "Partial"
    body, _ = translate(fx.sse(fx.tool_delta(0, '{"location":', "call_1", "get_weather")))
    item = raw_events(body)[-1]["response"]["output"][0]
    assert (item["type"], item["arguments"]) == ("function_call", '{"location":')


def test_the_pipeline_can_end_the_stream_with_its_own_error() -> None:
    shell = response_shell({"input": "Hi"}, model="gpt-x", response_id="resp_1")
    translator = ResponsesStreamTranslator(shell)
    head = translator.feed(b"".join(fx.text_stream("Hi")[:2]))
    tail = translator.fail(UpstreamError("The deployment went away.", code="upstream_gone"))
    events = raw_events(head + tail)
    assert events[-2] == {"type": "error", "code": "upstream_gone",
                          "message": "The deployment went away.", "param": None,
                          "sequence_number": len(events) - 2}
    assert translator.close() == b""
