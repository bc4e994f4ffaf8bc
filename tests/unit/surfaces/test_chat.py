"""The chat answer reading both surfaces share: completions and token counts."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import UpstreamError
from app.surfaces.chat import ChatAnswer, TokenCounts, ToolCall
from tests.unit.surfaces import chat_fixtures as fx


def test_answer_reads_text_tool_calls_finish_and_usage() -> None:
    answer = ChatAnswer.read(fx.completion(
        "Hi", tool_calls=[fx.call("call_1", "f", '{"a": 1}')], finish="tool_calls",
        usage=fx.CACHED_USAGE, stop_reason=None))
    assert answer == ChatAnswer("Hi", [ToolCall("call_1", "f", '{"a": 1}')], "tool_calls",
                                None, TokenCounts(100, 20, 120, cached=64, reasoning=8))


@pytest.mark.parametrize(("message", "text"), [
    ({"role": "assistant", "content": None, "refusal": "I can't help with that."},
     "I can't help with that."),
    ({"role": "assistant", "content": [{"type": "text", "text": "a"},
                                       {"type": "text", "text": "b"}]}, "ab"),
    ({"role": "assistant"}, ""),
])
def test_answer_text_forms(message: dict[str, Any], text: str) -> None:
    body = fx.completion()
    body["choices"][0]["message"] = message
    assert ChatAnswer.read(body).text == text


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"index": 0}]}, [], None])
def test_a_completion_without_a_message_is_a_502(body: Any) -> None:
    with pytest.raises(UpstreamError) as info:
        ChatAnswer.read(body)
    assert info.value.status == 502


@pytest.mark.parametrize(("usage", "expected"), [
    (fx.USAGE, TokenCounts(30, 12, 42)),
    (fx.CACHED_USAGE, TokenCounts(100, 20, 120, 64, 8)),
    (None, None),
    ("nonsense", None),
])
def test_token_counts(usage: Any, expected: TokenCounts | None) -> None:
    assert TokenCounts.from_chat(usage) == expected
