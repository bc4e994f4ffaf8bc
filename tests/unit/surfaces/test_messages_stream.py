"""Chat stream -> Anthropic SSE, read by the ``anthropic`` SDK's own stream machinery."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from app.errors import UpstreamError
from app.surfaces.chat_stream import iter_translated
from app.surfaces.messages_stream import MessagesStreamTranslator
from tests.unit.surfaces import chat_fixtures as fx
from tests.unit.surfaces.sdk import Upstream, anthropic_client, assert_no_extra, sse_answer

HELLO = {"role": "user", "content": "Hi"}


def translate(chunks: list[bytes], **kwargs: Any) -> bytes:
    kwargs.setdefault("model", "claude-x")
    return b"".join(iter_translated(chunks, MessagesStreamTranslator(**kwargs)))


def through_sdk(body: bytes) -> tuple[list[Any], Message]:
    """Every event the SDK's ``messages.stream()`` yields, and its final message."""
    client = anthropic_client(Upstream(lambda _: sse_answer(body)))
    with client.messages.stream(model="claude-x", max_tokens=100, messages=[HELLO]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    Message.model_validate(final.model_dump())
    assert_no_extra(final)
    return events, final


def raw_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE event; every event has exactly these two lines."""
    out = []
    for block in body.decode().split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        out.append((name_line[7:], json.loads(data_line[6:])))
    return out


def test_text_stream() -> None:
    body = translate(fx.text_stream("Hel", "lo", "!"), input_tokens=25, message_id="msg_1")
    assert [name for name, _ in raw_events(body)] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(name == data["type"] for name, data in raw_events(body))
    events, final = through_sdk(body)
    start = events[0]
    assert start.type == "message_start" and start.message.usage.input_tokens == 25
    assert [e.text for e in events if e.type == "text"] == ["Hel", "lo", "!"]
    assert final.model_dump(exclude_none=True) == {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0}}


def test_parallel_tool_calls_are_consecutive_blocks() -> None:
    events, final = through_sdk(translate(fx.tools_stream("Checking.")))
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_weather1", "name": "get_weather",
         "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_time2", "name": "get_time", "input": {"tz": "CET"}}]
    assert final.stop_reason == "tool_use"
    # the SDK saw the arguments arrive piece by piece, each block stopped before the next
    assert [e.partial_json for e in events if e.type == "input_json"] == [
        '{"location":', ' "Paris"}', '{"tz": "CET"}']
    order = [(e.type, e.index) for e in events
             if e.type in ("content_block_start", "content_block_stop")]
    assert order == [("content_block_start", 0), ("content_block_stop", 0),
                     ("content_block_start", 1), ("content_block_stop", 1),
                     ("content_block_start", 2), ("content_block_stop", 2)]


@pytest.mark.parametrize(("chunks", "reason", "sequence"), [
    (fx.text_stream("Hi", finish="length"), "max_tokens", None),
    (fx.text_stream("No.", finish="content_filter"), "refusal", None),
    (fx.text_stream("Done", stop_reason="END"), "stop_sequence", "END"),
    (fx.sse(fx.tool_delta(0, "{}", "call_1", "f"), fx.chunk(finish="stop"), "DONE"),
     "tool_use", None),
])
def test_stop_reasons(chunks: list[bytes], reason: str, sequence: str | None) -> None:
    _, final = through_sdk(translate(chunks, stop_sequences=["END"]))
    assert (final.stop_reason, final.stop_sequence) == (reason, sequence)


def test_cached_tokens_and_the_estimate_without_usage() -> None:
    _, final = through_sdk(translate(fx.text_stream("A", usage=fx.CACHED_USAGE)))
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
            final.usage.output_tokens) == (36, 64, 20)
    no_usage = fx.sse(fx.chunk({"content": "A"}), fx.chunk(finish="stop"), "DONE")
    _, final = through_sdk(translate(no_usage, input_tokens=9))
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 0)


@pytest.mark.parametrize(("chunks", "error_type", "exception"), [
    (fx.text_stream("Partial")[:3]
     + fx.sse({"error": {"message": "Overloaded", "type": "upstream_error",
                         "code": "upstream_overloaded", "param": None}}),
     "overloaded_error", anthropic.APIStatusError),
    (fx.text_stream("Partial")[:3], "api_error", anthropic.APIStatusError),  # no [DONE]
    (fx.text_stream("Partial")[:3] + [b"data: {oops\n\n"], "api_error",
     anthropic.APIStatusError),
])
def test_a_failure_mid_stream_is_an_error_event_the_sdk_raises(
        chunks: list[bytes], error_type: str, exception: type[Exception]) -> None:
    body = translate(chunks)
    name, data = raw_events(body)[-1]
    assert name == "error" and data["type"] == "error"
    assert data["error"]["type"] == error_type
    client = anthropic_client(Upstream(lambda _: sse_answer(body)))
    seen = []
    with pytest.raises(exception) as info:  # the text arrives before the error
        with client.messages.stream(model="claude-x", max_tokens=10,
                                    messages=[HELLO]) as stream:
            seen.extend(e.text for e in stream if e.type == "text")
    assert seen == ["Partial"]
    assert info.value.body == data


def test_the_pipeline_can_end_the_stream_with_its_own_error() -> None:
    translator = MessagesStreamTranslator(model="claude-x")
    head = translator.feed(b"".join(fx.text_stream("Hi")[:2]))
    tail = translator.fail(UpstreamError("The deployment went away.", code="x"))
    assert raw_events(head + tail)[-1] == ("error", {"type": "error", "error": {
        "type": "api_error", "message": "The deployment went away."}})
    assert translator.close() == b""


def test_bytes_cut_anywhere_give_the_same_stream() -> None:
    whole = b"".join(fx.tools_stream("Hi"))
    expected = translate([whole], message_id="msg_1")
    assert translate([whole[i:i + 1] for i in range(len(whole))], message_id="msg_1") == expected
