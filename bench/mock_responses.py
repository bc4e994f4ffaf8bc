"""The mock upstream's OpenAI Responses API (``POST /v1/responses``), stateless like an
OpenAI project with ``store: false``: it keeps nothing between requests.

Answers are realistic Responses objects; ``stream: true`` gives the typed events of the real
API (``event:`` + ``data:``, ``sequence_number`` from 0): ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, its content
(``response.content_part.added``, ``response.output_text.delta`` ..., ``.done``) or its
arguments (``response.function_call_arguments.delta`` ..., ``.done``),
``response.output_item.done``, and ``response.completed``.

What it answers: with function ``tools``, a ``function_call`` of the first one (arguments
``{"city": "Paris"}``, streamed in two fragments) unless the last input item is a
``function_call_output`` (then ``The tool said: <output>``); with a ``json_schema`` text
format, a JSON object made from the schema; else words. Like OpenAI with nothing stored, it
refuses ``previous_response_id`` (400 ``previous_response_not_found``) and input items that
carry an ``id`` (404: items are not persisted when ``store`` is false), and reasoning items
without ``encrypted_content``. ``x-mock-status`` answers that error status,
``x-mock-tokens`` sets the number of words.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

WORDS = ("mock", "responses", "upstream", "says", "hello", "to", "the", "gateway")


def sample_json(schema: Any, root: Any = None) -> Any:
    """A value that satisfies a (simple) JSON schema: what a model would answer to it (the
    gateway's mock model has its own copy: this upstream imports nothing of the gateway)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return sample_json(target, root)
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return sample_json(schema[key][0], root)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {name: sample_json(prop, root)
                for name, prop in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample_json(schema.get("items") or {}, root)]
    return {"string": "Paris", "integer": 2100000, "number": 1.5, "boolean": True}.get(
        str(kind))


def _error(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"
                      if status < 500 else "server_error", "param": param, "code": code}}


def refusal(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The error OpenAI would answer for state it does not have (it stores nothing), or None."""
    if body.get("previous_response_id"):
        return 400, _error(400, f"Previous response with id '{body['previous_response_id']}' "
                                f"not found.", "previous_response_not_found",
                           "previous_response_id")
    for item in body.get("input") if isinstance(body.get("input"), list) else []:
        if item.get("type") == "reasoning":
            unresolvable = not item.get("encrypted_content")
        else:
            unresolvable = "id" in item
        if unresolvable:
            return 404, _error(404, f"Item with id '{item.get('id')}' not found. Items are not "
                                    f"persisted when `store` is set to false.", "not_found",
                               "input")
    return None


def _output(body: dict[str, Any], words: int) -> list[dict[str, Any]]:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    last = items[-1] if items else {}
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and last.get("type") != "function_call_output":
        return [{"id": f"fc_{uuid.uuid4().hex}", "type": "function_call", "status": "completed",
                 "call_id": f"call_{uuid.uuid4().hex[:24]}", "name": tools[0]["name"],
                 "arguments": json.dumps({"city": "Paris"})}]
    fmt = (body.get("text") or {}).get("format") or {}
    if last.get("type") == "function_call_output":
        text = f"The tool said: {last.get('output')}"
    elif fmt.get("type") == "json_schema":
        text = json.dumps(sample_json(fmt.get("schema")))
    else:
        text = " ".join(WORDS[i % len(WORDS)] for i in range(words))
    return [{"id": f"msg_{uuid.uuid4().hex}", "type": "message", "status": "completed",
             "role": "assistant", "content": [{"type": "output_text", "text": text,
                                               "annotations": [], "logprobs": []}]}]


def response_object(body: dict[str, Any], words: int) -> dict[str, Any]:
    """The completed response to ``body``."""
    created = int(time.time())
    output = _output(body, words)
    prompt = len(json.dumps(body.get("input"))) // 4 + 1
    completion = sum(len(json.dumps(item)) for item in output) // 8 + 1
    return {
        "id": f"resp_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}", "object": "response",
        "created_at": created, "status": "completed", "completed_at": created,
        "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
        "model": body.get("model", "mock"), "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "service_tier": "default", "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_logprobs": 0, "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        "usage": {"input_tokens": prompt,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": completion,
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + completion},
        "metadata": body.get("metadata") or {},
    }


def events(response: dict[str, Any]) -> Iterator[bytes]:
    """``response``'s stream, event by event (see the module docstring)."""
    seq = iter(range(10**6))

    def event(kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    start = {**response, "status": "in_progress", "completed_at": None, "output": [],
             "usage": None}
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    for index, item in enumerate(response["output"]):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "arguments": ""})
            args = item["arguments"]
            for piece in (args[:5], args[5:]):
                yield event("response.function_call_arguments.delta", **at, delta=piece)
            yield event("response.function_call_arguments.done", **at, arguments=args)
        else:
            part = item["content"][0]
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "content": []})
            yield event("response.content_part.added",
                        **at, content_index=0, part={**part, "text": ""})
            words = part["text"].split(" ")
            for i, word in enumerate(words):
                yield event("response.output_text.delta", **at, content_index=0,
                            delta=word if i == len(words) - 1 else word + " ", logprobs=[])
            yield event("response.output_text.done",
                        **at, content_index=0, text=part["text"], logprobs=[])
            yield event("response.content_part.done", **at, content_index=0, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=response)
