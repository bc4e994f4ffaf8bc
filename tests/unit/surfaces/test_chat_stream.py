"""The chat stream reading both surfaces share: segments in order, failures once."""

from __future__ import annotations

import pytest

from app.errors import GatewayError, UpstreamError
from app.surfaces.chat_stream import ChatStreamTranslator, StreamedCall, iter_translated
from tests.unit.surfaces import chat_fixtures as fx


class Recorder(ChatStreamTranslator):
    """Writes each callback as one line, so a test reads the segments in order."""

    def _line(self, text: str) -> bytes:
        return (text + "\n").encode()

    def on_start(self) -> bytes:
        return self._line("start")

    def on_text_start(self) -> bytes:
        return self._line("text[")

    def on_text(self, text: str) -> bytes:
        return self._line(f"text {text}")

    def on_text_end(self) -> bytes:
        return self._line("]text")

    def on_tool_start(self, call: StreamedCall) -> bytes:
        return self._line(f"tool[ {call.id} {call.name}")

    def on_tool_delta(self, call: StreamedCall, arguments: str) -> bytes:
        return self._line(f"args {call.name} {arguments}")

    def on_tool_end(self, call: StreamedCall) -> bytes:
        return self._line(f"]tool {call.name} {call.arguments}")

    def on_finish(self) -> bytes:
        return self._line(f"finish {self.finish_reason} {self.usage}")

    def on_error(self, err: GatewayError) -> bytes:
        return self._line(f"error {err.status} {err.type} {err.code} {err.message}")


def run(chunks: list[bytes]) -> list[str]:
    return b"".join(iter_translated(chunks, Recorder())).decode().splitlines()



def test_text_then_sequential_tool_calls() -> None:
    assert run(fx.tools_stream("Let me check.")) == [
        "start", "text[", "text Let me check.", "]text",
        "tool[ call_weather1 get_weather", 'args get_weather {"location":',
        'args get_weather  "Paris"}', ']tool get_weather {"location": "Paris"}',
        "tool[ call_time2 get_time", 'args get_time {"tz": "CET"}',
        ']tool get_time {"tz": "CET"}',
        "finish tool_calls TokenCounts(input=30, output=12, total=42, cached=0, reasoning=0)"]


def test_interleaved_tool_calls_are_put_in_sequence() -> None:
    lines = run(fx.sse(fx.tool_delta(0, '{"a":', "call_a", "fa"),
                       fx.tool_delta(1, '{"b":', "call_b", "fb"),
                       fx.tool_delta(0, " 1}"), fx.tool_delta(1, " 2}"),
                       fx.tool_delta(2, "{}", "call_c", "fc"),
                       fx.chunk(finish="tool_calls"), "DONE"))
    assert lines[1:-1] == [
        "tool[ call_a fa", 'args fa {"a":', "args fa  1}", ']tool fa {"a": 1}',
        # b waited while a was incomplete, then starts with everything it had so far
        "tool[ call_b fb", 'args fb {"b":', "args fb  2}", ']tool fb {"b": 2}',
        "tool[ call_c fc", "args fc {}", "]tool fc {}"]


def test_a_call_still_waiting_at_the_finish_gets_its_turn() -> None:
    lines = run(fx.sse(fx.tool_delta(0, '{"a":', "call_a", "fa"),
                       fx.tool_delta(1, '{"b": 2}', "call_b", "fb"),
                       fx.tool_delta(0, " 1"),  # a never becomes complete JSON
                       fx.chunk(finish="tool_calls"), "DONE"))
    assert lines[1:-1] == ["tool[ call_a fa", 'args fa {"a":', "args fa  1",
                           ']tool fa {"a": 1', "tool[ call_b fb", 'args fb {"b": 2}',
                           ']tool fb {"b": 2}']


def test_a_call_starts_once_its_name_is_known_and_missing_ids_are_made_up() -> None:
    lines = run(fx.sse(fx.chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
                       fx.chunk({"tool_calls": [{"index": 0, "function": {"name": "f",
                                                                          "arguments": "}"}}]}),
                       fx.chunk(finish="tool_calls"), "DONE"))
    assert lines[1].startswith("tool[ call_") and lines[1].endswith(" f")
    assert lines[2:4] == ["args f {}", "]tool f {}"]


def test_calls_without_an_index_follow_one_another() -> None:
    lines = run(fx.sse(fx.chunk({"tool_calls": [{"id": "c1", "function": {"name": "f",
                                                                          "arguments": "{}"}}]}),
                       fx.chunk({"tool_calls": [{"id": "c2", "function": {"name": "g",
                                                                          "arguments": "{"}}]}),
                       fx.chunk({"tool_calls": [{"function": {"arguments": "}"}}]}),
                       fx.chunk(finish="tool_calls"), "DONE"))
    assert lines[1:-1] == ["tool[ c1 f", "args f {}", "]tool f {}",
                           "tool[ c2 g", "args g {", "args g }", "]tool g {}"]


def test_text_after_a_tool_call_is_a_new_segment_and_refusals_are_text() -> None:
    lines = run(fx.sse(fx.tool_delta(0, "{}", "c1", "f"), fx.chunk({"refusal": "No."}),
                       fx.chunk(finish="content_filter"), "DONE"))
    assert lines[1:-1] == ["tool[ c1 f", "args f {}", "]tool f {}", "text[", "text No.",
                           "]text"]
    assert lines[-1].startswith("finish content_filter")


def test_a_late_fragment_of_a_finished_call_fails_the_stream() -> None:
    lines = run(fx.sse(fx.tool_delta(0, "{}", "c1", "f"), fx.chunk({"content": "x"}),
                       fx.tool_delta(0, ' '),  # whitespace after the JSON is harmless
                       fx.tool_delta(0, '"more"'), "DONE"))
    assert lines[-1] == ("error 502 upstream_error invalid_upstream_response The upstream sent "
                         "tool call arguments out of order.")


def test_other_choices_empty_deltas_and_chunks_after_the_finish_are_ignored() -> None:
    other = fx.chunk({"content": "other choice"})
    other["choices"][0]["index"] = 1
    lines = run(fx.sse(fx.chunk({"role": "assistant", "content": ""}), other,
                       fx.chunk({"content": "A"}), fx.chunk(finish="stop"),
                       fx.chunk({"content": "late"}), "DONE"))
    assert lines == ["start", "text[", "text A", "]text", "finish stop None"]


def test_usage_in_the_finish_chunk_is_read() -> None:
    last = fx.chunk(finish="length")
    last["usage"] = fx.USAGE
    assert run(fx.sse(fx.chunk({"content": "A"}), last, "DONE"))[-1] == (
        "finish length TokenCounts(input=30, output=12, total=42, cached=0, reasoning=0)")


def test_a_stream_without_done_ends_with_an_error() -> None:
    assert run(fx.text_stream("A")[:-1])[-1] == (
        "error 502 upstream_error upstream_stream_truncated The upstream ended the stream "
        "before it was complete.")


@pytest.mark.parametrize(("chunks", "error"), [
    ([b"data: {not json\n\n"],
     "error 502 upstream_error invalid_upstream_response The upstream sent an invalid stream "
     "event."),
    ([b"data: [1, 2]\n\n"],
     "error 502 upstream_error invalid_upstream_response The upstream sent a malformed stream "
     "event."),
    (fx.sse({"error": {"message": "Overloaded", "type": "upstream_error",
                       "code": "upstream_overloaded", "param": None}}),
     "error 500 upstream_error upstream_overloaded Overloaded"),
])
def test_failures_end_the_stream_once(chunks: list[bytes], error: str) -> None:
    lines = run([*chunks, *fx.text_stream("never read")])
    assert lines[-1] == error
    assert sum(line.startswith("error") for line in lines) == 1


def test_an_empty_answer_still_starts_and_finishes() -> None:
    assert run(fx.sse("DONE")) == ["start", "finish None None"]


def test_bytes_cut_anywhere_give_the_same_result() -> None:
    whole = b"".join(fx.tools_stream("Hi"))
    expected = run([whole])
    for size in (1, 7, 64):
        assert run([whole[i:i + size] for i in range(0, len(whole), size)]) == expected


def test_comments_and_crlf_framing_are_understood() -> None:
    chunks = [b": keep-alive\r\n\r\n", *(c.replace(b"\n", b"\r\n") for c in fx.text_stream("A"))]
    assert run(chunks)[1:3] == ["text[", "text A"]


def test_fail_reports_the_pipeline_error_once_and_ends_the_stream() -> None:
    translator = Recorder()
    assert translator.feed(fx.text_stream("A")[0]) == b"start\n"
    out = translator.fail(UpstreamError("Gone.", code="x"))
    assert out == b"error 502 upstream_error x Gone.\n"
    assert translator.fail(UpstreamError("again")) == b""
    assert translator.close() == b""
    assert translator.feed(b"".join(fx.text_stream("B"))) == b""
