"""Chat completion -> Anthropic Messages API answer, and gateway errors in Anthropic's shape.

* :func:`chat_to_message` - a non-stream ``chat.completion`` as an Anthropic ``message``;
* :func:`stop_reason`, :func:`anthropic_usage`, :func:`tool_use_id` - the values the stream
  translator (:mod:`app.surfaces.messages_stream`) computes the same way;
* :func:`anthropic_error` - any :class:`~app.errors.GatewayError` as Anthropic's error object
  ``{"type": "error", "error": {"type", "message"}}`` and the HTTP status the ``anthropic``
  SDK maps to its exception classes.

Stop reasons: ``length`` -> ``max_tokens``; tool calls -> ``tool_use`` whatever the finish
reason said (some OpenAI-compatible servers finish a tool call with ``stop``, and an
``end_turn`` there stops an agent mid-task); ``content_filter`` -> ``refusal``; ``stop`` ->
``stop_sequence`` when the server names the stop string it matched (vLLM's ``stop_reason``)
and it is one the client asked for, otherwise ``end_turn``.

Usage: Anthropic's ``input_tokens`` excludes cached input and chat's ``prompt_tokens``
includes it, so ``input_tokens`` is prompt minus cached and ``cache_read_input_tokens`` the
cached tokens. Chat usage has no cache-write count: ``cache_creation_input_tokens`` is 0 and
cache writes are counted in ``input_tokens``.

Tool call arguments that are not a JSON object cannot be an Anthropic ``input``: such an
answer is a 502 rather than a tool call with its arguments lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from app.errors import GatewayError, UpstreamError
from app.surfaces.chat import ChatAnswer, TokenCounts, ToolCall, new_id, rate_limited

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")

# Statuses with an Anthropic error type of their own (the rest of 4xx: invalid_request_error).
_CLIENT_ERRORS = {401: "authentication_error", 402: "billing_error", 403: "permission_error",
                  404: "not_found_error", 413: "request_too_large"}
_OVERLOADED_CODES = frozenset(("upstream_overloaded", "service_unavailable"))


def stop_reason(finish_reason: str | None, *, tool_calls: bool, stop_string: str | None,
                stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """Anthropic's ``(stop_reason, stop_sequence)`` for a chat answer (see above)."""
    if finish_reason == "length":
        return "max_tokens", None
    if finish_reason == "content_filter":
        return "refusal", None
    if tool_calls:
        return "tool_use", None
    if stop_string is not None and stop_string in stop_sequences:
        return "stop_sequence", stop_string
    return STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def anthropic_usage(counts: TokenCounts | None, *, input_estimate: int = 0) -> dict[str, int]:
    """Anthropic's ``usage`` for chat token counts (the estimate when there are none)."""
    if counts is None:
        return {"input_tokens": input_estimate, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": max(counts.input - counts.cached, 0),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": counts.cached,
            "output_tokens": counts.output}


def tool_use_id(call_id: str) -> str:
    """A ``toolu_`` id for a chat tool call id: the same call always gets the same id."""
    if call_id.startswith("toolu_"):
        return call_id  # already Anthropic's (an Anthropic upstream behind the gateway)
    suffix = _NOT_ID.sub("", call_id.removeprefix("call_"))
    return f"toolu_{suffix}" if suffix else new_id("toolu_")


def tool_input(call: ToolCall) -> dict[str, Any]:
    """The parsed arguments of a tool call; UpstreamError (502) if not a JSON object."""
    if not call.arguments.strip():
        return {}
    try:
        parsed = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(f"The upstream returned arguments for tool {call.name!r} that are "
                            f"not a JSON object.", code="invalid_upstream_response")
    return parsed


def chat_to_message(completion: Any, *, model: str, stop_sequences: Sequence[str] = (),
                    message_id: str | None = None) -> dict[str, Any]:
    """A non-stream chat completion as an Anthropic ``message``.

    ``model`` is the name the client asked for; ``stop_sequences`` are the request's (to
    report which one matched). Raises UpstreamError (502) for a completion without a message
    or with tool arguments that are not a JSON object.
    """
    answer = ChatAnswer.read(completion)
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append({"type": "tool_use", "id": tool_use_id(call.id), "name": call.name,
                        "input": tool_input(call)})
    reason, sequence = stop_reason(answer.finish_reason, tool_calls=bool(answer.tool_calls),
                                   stop_string=answer.stop_string,
                                   stop_sequences=stop_sequences)
    return {"id": message_id or new_id("msg_"), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": reason,
            "stop_sequence": sequence, "usage": anthropic_usage(answer.usage)}


# --- errors --------------------------------------------------------------------------------

def _error_kind(err: GatewayError) -> tuple[int, str]:
    """(HTTP status, Anthropic error type) for ``err``.

    Errors relayed from a chat stream have no status of their own, so the code and the
    OpenAI type are read before the status.
    """
    status, code, kind = err.status, err.code, err.type
    if code in _OVERLOADED_CODES or status in (503, 529):
        return 529, "overloaded_error"
    if code == "upstream_timeout" or status == 504:
        return 504, "timeout_error"
    if kind == "insufficient_quota" or code == "insufficient_quota":
        return 402, "billing_error"  # a spent budget: not a 429 the SDK would retry
    if rate_limited(err):
        return 429, "rate_limit_error"
    if status in _CLIENT_ERRORS:
        return status, _CLIENT_ERRORS[status]
    if 400 <= status < 500:
        return status, "invalid_request_error"
    if kind == "invalid_request_error":
        return 400, "invalid_request_error"
    return (status if status >= 500 else 500), "api_error"


def anthropic_error(err: GatewayError) -> tuple[int, dict[str, Any]]:
    """``err`` as ``(HTTP status, Anthropic error body)``; send ``err.headers`` along.

    The status is one the ``anthropic`` SDK maps to its exception classes: 400
    BadRequestError, 401 AuthenticationError, 402 PaymentRequiredError (a spent budget), 403
    PermissionDeniedError, 404 NotFoundError, 413 ContentTooLargeError, 429 RateLimitError,
    500/502 InternalServerError, 504 GatewayTimeoutError, 529 OverloadedError (also for
    503s, as Anthropic reports overload).
    """
    status, kind = _error_kind(err)
    message = err.message
    if err.param and not message.startswith(err.param):
        message = f"{err.param}: {message}"
    return status, {"type": "error", "error": {"type": kind, "message": message}}
