"""Anthropic's Messages API behind the OpenAI chat completions interface, and relayed as is
to Messages API clients.

The translation is a set of pure, typed functions (request, response, errors) and stream
translators, in the spirit of LiteLLM's per-provider transformations:

* :func:`to_anthropic_request` - OpenAI chat body -> Messages API body (here)
* :func:`~app.providers.anthropic_answers.to_openai_completion` - Messages API message ->
  OpenAI ``chat.completion``
* :class:`~app.providers.anthropic_stream.AnthropicStreamTranslator` - Messages API events ->
  OpenAI chunks, one event at a time
* :func:`~app.providers.anthropic_answers.anthropic_error` - Anthropic error type/status ->
  the GatewayError the client sees

Fields of the OpenAI request that Anthropic has no equivalent for (penalties, seed, logprobs,
...) are dropped: the Messages API rejects unknown fields, so they cannot pass through.

A Messages API client's request (``/v1/messages``) is sent as the client wrote it, with the
deployment's model name, and its answer or stream relayed byte for byte
(:class:`~app.providers.anthropic_stream.MessagesPassThrough` reads usage on the way).
"""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import GatewayError, InvalidRequestError
from app.providers.anthropic_answers import (
    error_from_response,
    to_openai_completion,
    usage_dict,
    usage_of,
)
from app.providers.anthropic_stream import AnthropicStreamTranslator, MessagesPassThrough
from app.providers.base import MESSAGES, ChatRequest, ChatResult, ChatStream
from app.providers.relay import HTTPProvider, StreamTranslator
from app.providers.upstream import invalid_response

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

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

    def speaks(self, api: str) -> bool:
        return api == MESSAGES  # Messages API clients are relayed as is

    def endpoint_for(self, api: str) -> str:
        return self.url  # the Messages API is this upstream's own

    def native_payload(self, request: ChatRequest) -> bytes:
        """The client's own Messages API body, with the deployment's model name."""
        body = request.native or {}
        return orjson.dumps({**body, "model": self.deployment.model})

    def complete(self, request: ChatRequest) -> ChatResult:
        if request.api == MESSAGES:
            parsed, content, status = self.fetch_json(request, self.native_payload(request))
            if parsed.get("type") != "message":
                raise invalid_response(self.deployment, "returned no message")
            return ChatResult(content, usage_of(usage_dict(parsed.get("usage"))), status,
                              api=MESSAGES)
        payload = self.payload(request)
        parsed, _, _ = self.fetch_json(request, payload)
        if parsed.get("type") != "message":
            raise invalid_response(self.deployment, "returned no message")
        try:
            completion = to_openai_completion(parsed)
        except (AttributeError, TypeError, ValueError):
            raise invalid_response(self.deployment, "returned a malformed message") from None
        return ChatResult(orjson.dumps(completion), usage_of(completion["usage"]))

    def stream(self, request: ChatRequest) -> ChatStream:
        if request.api == MESSAGES:
            stream = self.open_stream(
                request, self.native_payload(request),
                lambda stream: MessagesPassThrough(stream, deployment=self.deployment))
            stream.api = MESSAGES
            return stream
        payload = self.payload(request)

        def translator(stream: ChatStream) -> StreamTranslator:
            return AnthropicStreamTranslator(stream, deployment=self.deployment,
                                             include_usage=request.include_usage)

        return self.open_stream(request, payload, translator)
