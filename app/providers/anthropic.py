"""Anthropic's Messages API behind the OpenAI chat completions interface.

The translation is a set of pure, typed functions (request, response, errors) and one stream
translator class, in the spirit of LiteLLM's per-provider transformations:

* :func:`to_anthropic_request` - OpenAI chat body -> Messages API body
* :func:`to_openai_completion` - Messages API message -> OpenAI ``chat.completion``
* :class:`AnthropicStreamTranslator` - Messages API events -> OpenAI chunks, one event at a time
* :func:`anthropic_error` - Anthropic error type/status -> the GatewayError the client sees

Fields of the OpenAI request that Anthropic has no equivalent for (penalties, seed, logprobs,
...) are dropped: the Messages API rejects unknown fields, so they cannot pass through.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from app.errors import GatewayError, InvalidRequestError, RateLimitError, UpstreamError
from app.providers.anthropic_format import tool_call
from app.providers.base import ChatRequest, ChatResult, ChatStream, Usage
from app.providers.relay import HTTPProvider, StreamTranslator
from app.providers.upstream import (
    invalid_response,
    retry_after_headers,
    upstream_auth_error,
    upstream_error_from_response,
)
from app.settings import Deployment
from app.streaming import DONE_EVENT, SSEBuffer, event_data, iter_events, sse_event

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

JSON_OBJECT_INSTRUCTION = ("Respond with a single valid JSON object and nothing else: no prose, "
                           "no code fences.")


# --- request -------------------------------------------------------------------------------

def _unsupported(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="unsupported_parameter")


def _text_of(content: Any, param: str) -> str:
    """The text of a system/developer/tool message: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.get("type") != "text":
            raise _unsupported(f"Only text parts are supported here, got "
                               f"{part.get('type')!r}.", f"{param}[{i}].type")
        texts.append(str(part.get("text", "")))
    return "\n".join(texts)


def image_block(url: str, param: str) -> dict[str, Any]:
    """An OpenAI ``image_url`` as an Anthropic image block (base64 for data URLs)."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequestError("Image data URLs must look like "
                                      "data:<media type>;base64,<data>.", param=param,
                                      code="invalid_image_url")
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError("Image URLs must be http(s) or data URLs.", param=param,
                              code="invalid_image_url")


def _content_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    """User/assistant content as Anthropic blocks; empty text is dropped (Anthropic rejects it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type")
        where = f"{param}[{i}]"
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if isinstance(text, str) and text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequestError("image_url.url must be a string.",
                                          param=f"{where}.image_url", code="invalid_value")
            blocks.append(image_block(url, f"{where}.image_url.url"))
        else:
            raise _unsupported(f"Content parts of type {kind!r} are not supported by "
                               f"Anthropic models.", f"{where}.type")
    return blocks


def _tool_use_blocks(tool_calls: Any, param: str) -> list[dict[str, Any]]:
    blocks = []
    for i, call in enumerate(tool_calls or []):
        function = call.get("function")
        if not isinstance(function, dict):
            raise InvalidRequestError("Each tool call needs a function object.",
                                      param=f"{param}[{i}].function", code="invalid_value")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequestError("Tool call arguments must be a JSON object.",
                                      param=f"{param}[{i}].function.arguments",
                                      code="invalid_value")
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                       "input": parsed})
    return blocks


def _tool_result_block(message: dict[str, Any], param: str) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, list):
        block["content"] = _content_blocks(content, f"{param}.content")
    else:
        block["content"] = content or ""
    return block


def translate_messages(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Split OpenAI messages into system texts and Anthropic turns.

    System and developer messages become the top-level ``system``. Consecutive turns of the
    same role are merged into one (Anthropic requires alternating roles); tool results are
    user-side content, so consecutive tool messages become one user turn of tool_result
    blocks.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"{param}.content")
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _content_blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            blocks = (_content_blocks(message.get("content"), f"{param}.content")
                      + _tool_use_blocks(message.get("tool_calls"), f"{param}.tool_calls"))
        elif role == "tool":
            blocks, role = [_tool_result_block(message, param)], "user"
        else:
            raise _unsupported("The legacy 'function' role is not supported by Anthropic "
                               "models; use tools.", f"{param}.role")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def translate_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools -> Anthropic tools (``parameters`` -> ``input_schema``)."""
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise _unsupported("Only function tools are supported by Anthropic models.",
                               f"tools[{i}].type")
        function = tool["function"]
        converted: dict[str, Any] = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted["description"] = function["description"]
        out.append(converted)
    return out


def translate_tool_choice(choice: Any, parallel_tool_calls: Any) -> dict[str, Any] | None:
    """auto/none/required/named -> Anthropic's ``{type: auto|none|any|tool}``."""
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequestError("tool_choice must be 'auto', 'none', 'required' or "
                                  "{'type': 'function', 'function': {'name': ...}}.",
                                  param="tool_choice", code="invalid_value")
    if parallel_tool_calls is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def _response_format_instruction(response_format: Any) -> str | None:
    """JSON mode has no Messages API switch: it becomes an instruction in the system prompt."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = orjson.dumps(spec.get("schema") or {}).decode()
        return f"{JSON_OBJECT_INSTRUCTION} It must conform to this JSON Schema: {schema}"
    return None


def to_anthropic_request(body: dict[str, Any], *, model: str,
                         default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """Translate an OpenAI chat completion body into a Messages API body.

    Raises InvalidRequestError (400) for what Anthropic cannot do (n > 1, non-function tools,
    audio/file parts, the legacy function role, tool arguments that are not JSON objects), a
    conversation with no user or assistant turn (only system messages), and a ``temperature``
    above 1: OpenAI accepts 0-2, the Messages API 0-1, and silently clamping 1.5 to 1 would
    answer a different request than the one sent.
    """
    n = body.get("n")
    if n is not None and n != 1:
        raise _unsupported("Anthropic models return one choice: n must be 1.", "n")
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and temperature > 1:
        raise InvalidRequestError(
            f"Invalid value for 'temperature': {temperature} is above 1, the largest value "
            f"Anthropic models accept (OpenAI's range is 0-2).", param="temperature",
            code="invalid_value")
    system, turns = translate_messages(body["messages"])
    if not turns:
        raise InvalidRequestError(
            "Anthropic models need at least one user or assistant message; 'messages' holds "
            "only system or developer messages.", param="messages", code="invalid_value")
    instruction = _response_format_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
        or default_max_tokens,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = translate_tools(body["tools"])
        choice = translate_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream") is True:
        out["stream"] = True
    return out


# --- response ------------------------------------------------------------------------------

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


def _usage_of(usage: dict[str, Any]) -> Usage:
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


def _error_fields(payload: Any) -> tuple[str, str] | None:
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
        fields = _error_fields(orjson.loads(content)) if content else None
    except orjson.JSONDecodeError:
        fields = None
    if fields is None:
        return upstream_error_from_response(status, content, deployment, headers)
    relay = retry_after_headers(503 if status == 529 else status, headers)
    return anthropic_error(fields[0], fields[1], status=status, deployment=deployment,
                           headers=relay)


# --- stream --------------------------------------------------------------------------------

class AnthropicStreamTranslator(StreamTranslator):
    """Messages API stream events -> OpenAI ``chat.completion.chunk`` events, one at a time.

    Tool calls get OpenAI indexes 0, 1, ... in the order their blocks start, and keep them for
    every argument delta, whatever Anthropic's block index is and however deltas interleave.
    """

    def __init__(self, stream: ChatStream, *, deployment: Deployment, include_usage: bool,
                 created: int | None = None) -> None:
        super().__init__(stream)
        self.deployment = deployment
        self.include_usage = include_usage
        self.buffer = SSEBuffer()
        self.id = f"msg_{uuid.uuid4().hex}"
        self.model = deployment.model
        self.created = created if created is not None else int(time.time())
        self.usage: dict[str, Any] = {}  # Anthropic's fields, updated as events report them
        self.tool_indexes: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        for event in iter_events(self.buffer.feed(chunk)):
            if self.error is not None:
                break
            data = event_data(event)
            if not data:
                continue  # comments / keep-alives
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.error = invalid_response(self.deployment, "sent an invalid stream event")
                break
            try:
                out += self.translate(payload)
            except (AttributeError, TypeError, ValueError):
                # A malformed event must end this stream with an error, not kill the worker.
                self.error = invalid_response(self.deployment, "sent a malformed stream event")
                break
        return bytes(out)

    def translate(self, event: Any) -> bytes:
        """One Anthropic event -> zero or more OpenAI SSE events (bytes)."""
        kind = event.get("type")
        if kind == "message_start":
            return self._message_start(event.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(_int(event.get("index")), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(_int(event.get("index")), event.get("delta") or {})
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            fields = _error_fields(event) or ("api_error", "stream error")
            self.error = anthropic_error(fields[0], fields[1], status=None,
                                         deployment=self.deployment)
        # ping, content_block_stop and event types added later carry nothing to translate
        return b""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the final usage chunk carries it
        return sse_event(chunk)

    def _message_start(self, message: dict[str, Any]) -> bytes:
        if message.get("id"):
            self.id = str(message["id"])
        if message.get("model"):
            self.model = str(message["model"])
        if isinstance(message.get("usage"), dict):
            self.usage.update(message["usage"])
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        if block.get("type") == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if block.get("type") != "tool_use":
            return b""
        tool_index = self.tool_indexes[index] = len(self.tool_indexes)
        return self._chunk({"tool_calls": [{
            "index": tool_index, "id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": ""}}]})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind == "input_json_delta" and delta.get("partial_json") \
                and index in self.tool_indexes:
            return self._chunk({"tool_calls": [{
                "index": self.tool_indexes[index],
                "function": {"arguments": delta["partial_json"]}}]})
        return b""  # thinking, signature and citation deltas have no OpenAI equivalent

    def _message_delta(self, event: dict[str, Any]) -> bytes:
        if isinstance(event.get("usage"), dict):
            # Counts in message_delta are cumulative: they replace, not add to, earlier ones.
            self.usage.update({k: v for k, v in event["usage"].items() if v is not None})
            # Recorded now too: a stream cut after this point still accounts its tokens.
            self.stream.usage = _usage_of(usage_dict(self.usage))
        delta = event.get("delta") or {}
        if "stop_reason" not in delta:
            return b""
        return self._chunk({}, finish_reason(delta.get("stop_reason")))

    def _message_stop(self) -> bytes:
        usage = usage_dict(self.usage)
        self.stream.usage = _usage_of(usage)
        self.stream.completed = True
        out = b""
        if self.include_usage:
            out = sse_event({"id": self.id, "object": "chat.completion.chunk",
                             "created": self.created, "model": self.model, "choices": [],
                             "usage": usage})
        return out + DONE_EVENT


# --- provider ------------------------------------------------------------------------------

class AnthropicProvider(HTTPProvider):
    kind = "anthropic"

    def endpoint(self) -> str:
        return f"{self.deployment.api_base}/messages"

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def protocol_headers(self) -> dict[str, str]:
        return {"anthropic-version": self.deployment.anthropic_version or ANTHROPIC_VERSION}

    def error_from_response(self, status: int, content: bytes, headers: Any) -> GatewayError:
        return error_from_response(status, content, self.deployment, headers)

    def payload(self, request: ChatRequest) -> bytes:
        """The Messages API body for ``request`` (raises InvalidRequestError, see above)."""
        body = to_anthropic_request(
            request.body, model=self.deployment.model,
            default_max_tokens=self.deployment.default_max_tokens or DEFAULT_MAX_TOKENS)
        return orjson.dumps(body)

    def complete(self, request: ChatRequest) -> ChatResult:
        payload = self.payload(request)
        parsed, _, _ = self.fetch_json(request, payload)
        if parsed.get("type") != "message":
            raise invalid_response(self.deployment, "returned no message")
        try:
            completion = to_openai_completion(parsed)
        except (AttributeError, TypeError, ValueError):
            raise invalid_response(self.deployment, "returned a malformed message") from None
        return ChatResult(orjson.dumps(completion), _usage_of(completion["usage"]))

    def stream(self, request: ChatRequest) -> ChatStream:
        payload = self.payload(request)

        def translator(stream: ChatStream) -> StreamTranslator:
            return AnthropicStreamTranslator(stream, deployment=self.deployment,
                                             include_usage=request.include_usage)

        return self.open_stream(request, payload, translator)
