"""Chat completion -> OpenAI Responses API ``response`` object.

* :func:`response_shell` - the response object before any output: the request's settings
  echoed (``instructions``, ``tools``, ``tool_choice``, ``text``, ``temperature``, ``top_p``,
  ``parallel_tool_calls``, ``max_output_tokens``, ``reasoning``, ``metadata``,
  ``previous_response_id``, ``store``, ``user``, ...), built once per request and shared by
  the non-stream answer and the stream;
* :func:`chat_to_response` - a non-stream chat completion as the finished response;
* :func:`message_item`, :func:`function_call_item`, :func:`response_usage`,
  :func:`finish_status`, :func:`response_error` - the pieces the stream translator
  (:mod:`app.surfaces.responses_stream`) builds the same way.

Output: the answer's text is one ``message`` item (``output_text`` with ``annotations: []``;
refusal text included), followed by one ``function_call`` item per tool call (``call_id`` is
the chat call id, which the client sends back in ``function_call_output``; the item id is
``fc_`` plus that id). ``length`` finishes the response ``incomplete`` with
``incomplete_details.reason: max_output_tokens``, ``content_filter`` with ``content_filter``.
Usage: ``input_tokens`` (cached included, as OpenAI counts), ``cached_tokens``,
``reasoning_tokens`` from ``completion_tokens_details``; chat reports no cache writes
(``cache_write_tokens`` is 0). ``output_text`` is an SDK convenience and is not sent.
"""

from __future__ import annotations

import re
import time
from typing import Any

from app.errors import GatewayError
from app.surfaces.chat import ChatAnswer, TokenCounts, new_id, rate_limited

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "name": tool.get("name"),
            "description": tool.get("description"), "parameters": tool.get("parameters"),
            "strict": tool.get("strict")}


def response_shell(body: dict[str, Any], *, model: str, response_id: str | None = None,
                   created_at: int | None = None) -> dict[str, Any]:
    """The ``in_progress`` response for a request ``body`` (already translated, so valid).

    ``model`` is the name the client asked for.
    """
    reasoning = body.get("reasoning")
    return {
        "id": response_id or new_id("resp_"), "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "completed_at": None, "status": "in_progress", "background": False, "error": None,
        "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"), "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
        if isinstance(reasoning, dict) else {"effort": None, "summary": None},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"), "top_p": body.get("top_p"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [_echo_tool(t) for t in body.get("tools") or []],
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
        # echoed only when given: OpenAI's schema allows no null for these
        **{name: body[name] for name in ("user", "safety_identifier", "prompt_cache_key",
                                         "service_tier") if body.get(name) is not None},
    }


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """The response's ``(status, incomplete_details)`` for a chat finish reason."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_usage(counts: TokenCounts) -> dict[str, Any]:
    return {"input_tokens": counts.input,
            "input_tokens_details": {"cached_tokens": counts.cached, "cache_write_tokens": 0},
            "output_tokens": counts.output,
            "output_tokens_details": {"reasoning_tokens": counts.reasoning},
            "total_tokens": counts.total}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """An assistant ``message`` output item (``text`` None: no content part yet)."""
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [] if text is None else [text_part(text)]}


def function_call_id(call_id: str) -> str:
    """The output item id of a function call: ``fc_`` and its call id."""
    suffix = _NOT_ID.sub("", call_id.removeprefix("call_"))
    return f"fc_{suffix}" if suffix else new_id("fc_")


def function_call_item(call_id: str, name: str, arguments: str, status: str
                       ) -> dict[str, Any]:
    return {"id": function_call_id(call_id), "type": "function_call", "status": status,
            "call_id": call_id, "name": name, "arguments": arguments}


def finished(shell: dict[str, Any], output: list[dict[str, Any]], finish_reason: str | None,
             usage: TokenCounts | None) -> dict[str, Any]:
    """The final response: ``shell`` with its output, status and usage."""
    status, details = finish_status(finish_reason)
    response = {**shell, "status": status, "incomplete_details": details, "output": output,
                "completed_at": int(time.time()) if status == "completed" else None}
    if usage is not None:  # no null usage in OpenAI's schema: left out when unknown
        response["usage"] = response_usage(usage)
    return response


def chat_to_response(completion: Any, shell: dict[str, Any]) -> dict[str, Any]:
    """A non-stream chat completion as the finished response built on ``shell``.

    Raises UpstreamError (502) for a completion without a message.
    """
    answer = ChatAnswer.read(completion)
    item_status = "incomplete" if answer.finish_reason == "length" else "completed"
    output = [message_item(new_id("msg_"), answer.text, item_status)] if answer.text else []
    output += [function_call_item(c.id, c.name, c.arguments, "completed")
               for c in answer.tool_calls]
    return finished(shell, output, answer.finish_reason, answer.usage)


def response_error(err: GatewayError) -> dict[str, Any]:
    """The ``error`` of a failed response: ``code`` is one of the values the Responses API
    defines, so a rate limit is ``rate_limit_exceeded`` and anything else ``server_error``."""
    return {"code": "rate_limit_exceeded" if rate_limited(err) else "server_error",
            "message": err.message}
