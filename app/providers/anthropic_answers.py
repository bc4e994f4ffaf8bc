"""Anthropic's answers read for OpenAI clients: stop reasons, usage, messages and errors.

* :func:`to_openai_completion` - Messages API message -> OpenAI ``chat.completion``
* :func:`usage_dict` - Anthropic usage -> OpenAI usage (cache reads and writes included)
* :func:`anthropic_error` / :func:`error_from_response` - Anthropic error type/status -> the
  GatewayError the client sees
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from app.errors import GatewayError, InvalidRequestError, RateLimitError, UpstreamError
from app.providers.anthropic_format import tool_call
from app.providers.base import Usage
from app.providers.upstream import (
    retry_after_headers,
    upstream_auth_error,
    upstream_error_from_response,
)
from app.settings import Deployment

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """Anthropic's ``stop_reason`` as OpenAI's ``finish_reason``."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_dict(usage: Any) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage.

    Anthropic's ``input_tokens`` excludes cached input; OpenAI's ``prompt_tokens`` includes
    it, so cache reads and cache writes are added back and cache reads reported as
    ``prompt_tokens_details.cached_tokens``.
    """
    usage = usage if isinstance(usage, dict) else {}
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    prompt = _int(usage.get("input_tokens")) + cache_read + cache_write
    completion = _int(usage.get("output_tokens"))
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return out


def usage_of(usage: dict[str, Any]) -> Usage:
    # usage_dict always builds a well-formed object, so from_openai never returns None here.
    return Usage.from_openai(usage) or Usage(0, 0, 0)


def to_openai_completion(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """Translate a Messages API response into an OpenAI ``chat.completion``."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(tool_call(block))
        # thinking and server-tool blocks have no place in OpenAI's message
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                             "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": str(message.get("id") or f"msg_{uuid.uuid4().hex}"),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": str(message.get("model") or ""),
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": usage_dict(message.get("usage")),
    }


# --- errors --------------------------------------------------------------------------------

def anthropic_error(error_type: str, message: str, *, status: int | None,
                    deployment: Deployment, headers: dict[str, str] | None = None
                    ) -> GatewayError:
    """An Anthropic error (HTTP answer or stream ``error`` event) as the client's error.

    Credentials problems are the gateway's (502, like the OpenAI relay); overload is a
    retryable 503 rather than Anthropic's non-standard 529.
    """
    relay = headers or {}
    text = f"Anthropic: {message}"
    if error_type in ("authentication_error", "permission_error"):
        return upstream_auth_error(deployment, message)
    if error_type == "invalid_request_error":
        return InvalidRequestError(text, code="invalid_request_error")
    if error_type == "request_too_large":
        return InvalidRequestError(text, status=413, code="request_too_large")
    if error_type == "not_found_error":
        return InvalidRequestError(text, status=404, code="not_found")
    if error_type == "rate_limit_error":
        return RateLimitError(text, code="upstream_rate_limited", headers=relay)
    if error_type == "overloaded_error":
        return UpstreamError(text, status=503, code="upstream_overloaded", headers=relay)
    if error_type == "api_error":
        return UpstreamError(text, status=500, code="upstream_api_error")
    return UpstreamError(text, status=status if status and status >= 500 else 502,
                         code="upstream_error")


def error_fields(payload: Any) -> tuple[str, str] | None:
    """(type, message) of ``{"type": "error", "error": {"type", "message"}}``."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("type"), str):
        return None
    return err["type"], str(err.get("message") or err["type"])


def error_from_response(status: int, content: bytes, deployment: Deployment,
                        headers: Any = None) -> GatewayError:
    """Map an Anthropic HTTP error answer; bodies of another shape get the generic mapping."""
    try:
        fields = error_fields(orjson.loads(content)) if content else None
    except orjson.JSONDecodeError:
        fields = None
    if fields is None:
        return upstream_error_from_response(status, content, deployment, headers)
    relay = retry_after_headers(503 if status == 529 else status, headers)
    return anthropic_error(fields[0], fields[1], status=status, deployment=deployment,
                           headers=relay)


# --- stream --------------------------------------------------------------------------------
