"""Reading the chat pipeline's non-stream answers, once for every surface.

Both inbound surfaces turn a chat completion into their own shape, and what they read from
it is the same and is read here: :class:`ChatAnswer` (text, tool calls, finish reason and
token counts of choice 0, the only choice the surfaces ask for) and :class:`TokenCounts` (a
chat ``usage`` object, with the reasoning tokens the gateway's
:class:`~app.providers.base.Usage` does not keep). Refusal text is read as text: both
surfaces show it as the answer, and a ``content_filter`` finish says it was one. The stream
counterpart is :mod:`app.surfaces.chat_stream`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.errors import GatewayError, UpstreamError
from app.providers.base import Usage


def int_or_zero(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# OpenAI error types of a rate limit: the gateway's own, and an upstream's ("tokens",
# "requests") relayed as is.
RATE_LIMIT_TYPES = frozenset(("rate_limit_exceeded", "rate_limit_error", "tokens", "requests"))


def rate_limited(err: GatewayError) -> bool:
    """Whether ``err`` is a rate limit (a 429, or a relayed stream error of that type)."""
    return err.status == 429 or err.type in RATE_LIMIT_TYPES


def new_id(prefix: str) -> str:
    """A fresh identifier in the style of the surfaces' own (``msg_...``, ``resp_...``)."""
    return f"{prefix}{uuid.uuid4().hex}"


@dataclass(slots=True, frozen=True)
class TokenCounts:
    """A chat ``usage`` object: ``input`` includes ``cached`` and ``output`` ``reasoning``."""

    input: int
    output: int
    total: int
    cached: int = 0
    reasoning: int = 0

    @classmethod
    def from_chat(cls, usage: Any) -> TokenCounts | None:
        """Read a chat ``usage`` object; None when it is absent or malformed."""
        counts = Usage.from_openai(usage)
        if counts is None:
            return None
        details = usage.get("completion_tokens_details")
        reasoning = int_or_zero(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
        return cls(counts.prompt_tokens, counts.completion_tokens, counts.total_tokens,
                   counts.cached_tokens, reasoning)


@dataclass(slots=True, frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON string, as the upstream wrote it


@dataclass(slots=True, frozen=True)
class ChatAnswer:
    """Choice 0 of a non-stream chat completion."""

    text: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    stop_string: str | None  # the stop sequence that ended the answer, when the server says
    usage: TokenCounts | None

    @classmethod
    def read(cls, completion: Any) -> ChatAnswer:
        """Read ``completion``; UpstreamError (502) when it has no message to read."""
        choices = completion.get("choices") if isinstance(completion, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise UpstreamError("The upstream returned a completion without a message.",
                                code="invalid_upstream_response")
        assert isinstance(choice, dict)
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                calls.append(ToolCall(str(call.get("id") or new_id("call_")),
                                      str(function.get("name") or ""),
                                      str(function.get("arguments") or "")))
        return cls(_content_text(message.get("content")) + _content_text(message.get("refusal")),
                   calls, str_or_none(choice.get("finish_reason")),
                   str_or_none(choice.get("stop_reason")),
                   TokenCounts.from_chat(completion.get("usage")))


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or part.get("refusal") or "")
                       for part in content if isinstance(part, dict))
    return ""


def tool_attachments(call_id: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images or files a tool returned, as user content parts naming the call.

    A chat ``tool`` message holds text only; both surfaces send what else a tool returned in
    a user message after the tool messages, and this caption says where it came from.
    """
    return [{"type": "text", "text": f"Attachments returned by tool call {call_id}:"}, *parts]
