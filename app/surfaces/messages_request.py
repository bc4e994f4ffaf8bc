"""Anthropic Messages API request -> the chat completion body the chat pipeline routes.

:func:`messages_to_chat` validates what it translates, the way Anthropic's API does (its
limits, e.g. ``temperature`` 0-1; unknown top-level fields are refused as extra inputs), and
raises :class:`~app.errors.InvalidRequestError` with ``param`` set to Anthropic's dotted path
(``messages.2.content.0.source``); :func:`app.surfaces.messages.anthropic_error` renders it.

Mapped: ``system`` (a string or text blocks, joined) -> a system message; user/assistant
``messages`` with string or block content: ``text``, ``image`` (base64 -> a data URL, url ->
the URL), ``document`` (base64 PDF -> a ``file`` part, plain text -> text), ``tool_use`` ->
assistant ``tool_calls``, ``tool_result`` -> ``tool`` messages placed before the rest of the
user turn (the chat format wants them right after the assistant's calls; an ``is_error``
result starts with "Error: ", and images in a result, which a chat tool message cannot hold,
follow in a user message naming the call); ``tools`` -> function tools (``strict`` kept);
``tool_choice`` auto/any/tool/none and ``disable_parallel_tool_use`` -> ``tool_choice`` and
``parallel_tool_calls``; ``max_tokens`` -> ``max_completion_tokens`` (what OpenAI's reasoning
models accept); ``stop_sequences`` -> ``stop``; ``temperature``; ``top_p``;
``metadata.user_id`` -> ``user``; ``stream`` -> ``stream`` with usage in the stream (the
surface reports it); ``output_config.format`` -> a strict ``json_schema`` response format.

Validated, then dropped, because the chat request has no equivalent that every upstream
accepts (OpenAI rejects ``top_k``, and ``reasoning_effort`` on non-reasoning models):
``top_k``; ``thinking`` and ``output_config.effort`` (reasoning models reason with their own
default effort; no thinking blocks are returned); ``thinking`` and ``redacted_thinking``
blocks in the history (their signatures only mean something to Anthropic); ``cache_control``
everywhere (OpenAI caches prompts by itself); and ``service_tier``, ``speed``,
``inference_geo``, ``diagnostics``, ``context_management`` (hints for Anthropic's servers).

Refused with a 400 naming the field: Anthropic's server tools and built-in tool types
(``tools.N.type``), ``container``, ``mcp_servers``, image/document ``file`` sources, blocks
the chat format cannot carry (``server_tool_use``, ``search_result``, ...), more than four
stop sequences (the chat limit), and a request with no message left to send (``messages``).
A final assistant message is sent as an assistant turn: an Anthropic upstream continues it
as a prefill, an OpenAI one answers after it.
"""

from __future__ import annotations

from typing import Any

from app.providers.anthropic_format import tool_call
from app.surfaces.chat import tool_attachments
from app.surfaces.checks import (
    Checks,
    anthropic_wording,
    invalid,
    missing,
    unknown,
    unsupported,
)
from app.tokens import estimate_message_tokens

# Top-level fields that are translated, and those accepted but dropped (see above).
TRANSLATED = frozenset(("model", "messages", "max_tokens", "system", "stop_sequences",
                        "temperature", "top_p", "tools", "tool_choice", "metadata", "stream",
                        "output_config"))
DROPPED = frozenset(("top_k", "thinking", "cache_control", "service_tier", "speed",
                     "inference_geo", "diagnostics", "context_management"))
REFUSED = frozenset(("container", "mcp_servers"))
THINKING_TYPES = frozenset(("enabled", "disabled", "adaptive"))
MAX_STOP_SEQUENCES = 4  # the chat completions limit


check = Checks(anthropic_wording)


def _required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise missing(name, "Field required.")
    return body[name]


# --- content -------------------------------------------------------------------------------

def _text_of_blocks(blocks: Any, param: str) -> str:
    """The text of a string or of a list of text blocks (system prompt, tool results)."""
    if isinstance(blocks, str):
        return blocks
    texts = []
    for i, block in enumerate(check.array(blocks, param)):
        block = check.object(block, f"{param}.{i}")
        if block.get("type") != "text":
            raise unsupported(f"{param}.{i}.type", "Only text blocks are supported here.")
        texts.append(check.string(block.get("text"), f"{param}.{i}.text"))
    return "\n\n".join(texts)


def _image_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = check.object(block.get("source"), f"{param}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = check.string(source.get("media_type"), f"{param}.source.media_type",
                                  empty=False)
        data = check.string(source.get("data"), f"{param}.source.data", empty=False)
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = check.string(source.get("url"), f"{param}.source.url", empty=False)
    else:
        raise unsupported(f"{param}.source.type", "Images must have a base64 or url source.")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = check.object(block.get("source"), f"{param}.source")
    kind = source.get("type")
    if kind == "text":
        return {"type": "text", "text": check.string(source.get("data"), f"{param}.source.data")}
    if kind == "content":
        return {"type": "text", "text": _text_of_blocks(source.get("content"),
                                                       f"{param}.source.content")}
    if kind == "base64" and source.get("media_type") == "application/pdf":
        data = check.string(source.get("data"), f"{param}.source.data", empty=False)
        title = block.get("title")
        return {"type": "file", "file": {
            "filename": title if isinstance(title, str) and title else "document.pdf",
            "file_data": f"data:application/pdf;base64,{data}"}}
    raise unsupported(f"{param}.source.type", "Documents must be base64 PDFs or text.")


def _user_part(block: dict[str, Any], param: str) -> dict[str, Any] | None:
    kind = block.get("type")
    if kind == "text":
        text = check.string(block.get("text"), f"{param}.text")
        return {"type": "text", "text": text} if text else None
    if kind == "image":
        return _image_part(block, param)
    if kind == "document":
        return _document_part(block, param)
    raise unsupported(f"{param}.type", f"Content blocks of type {kind!r} are not supported "
                                        f"in user messages.")


def _tool_result(block: dict[str, Any], param: str
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A ``tool_result`` block -> its ``tool`` message, and the images it returned."""
    call_id = check.string(block.get("tool_use_id"), f"{param}.tool_use_id", empty=False)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for i, item in enumerate(check.array(content, f"{param}.content")):
            item = check.object(item, f"{param}.content.{i}")
            part = _user_part(item, f"{param}.content.{i}")
            if part is None:
                continue
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user_messages(content: Any, param: str) -> list[dict[str, Any]]:
    """A user turn -> its tool messages first, then one user message with the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    tools: list[dict[str, Any]] = []
    returned: list[dict[str, Any]] = []  # images from tool results, with their captions
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(check.array(content, f"{param}.content")):
        where = f"{param}.content.{i}"
        block = check.object(block, where)
        if block.get("type") == "tool_result":
            message, images = _tool_result(block, where)
            tools.append(message)
            if images:
                returned += tool_attachments(message["tool_call_id"], images)
        else:
            part = _user_part(block, where)
            if part is not None:
                parts.append(part)
    parts = returned + parts
    if not parts:
        return tools
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tools, {"role": "user", "content": parts[0]["text"]}]
    return [*tools, {"role": "user", "content": parts}]


def _assistant_messages(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}] if content else []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(check.array(content, f"{param}.content")):
        where = f"{param}.content.{i}"
        block = check.object(block, where)
        kind = block.get("type")
        if kind == "text":
            texts.append(check.string(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            check.string(block.get("id"), f"{where}.id", empty=False)
            check.string(block.get("name"), f"{where}.name", empty=False)
            check.object(block.get("input"), f"{where}.input")
            calls.append(tool_call(block))
        elif kind not in ("thinking", "redacted_thinking"):
            raise unsupported(f"{where}.type", f"Content blocks of type {kind!r} are not "
                                                f"supported in assistant messages.")
    text = "".join(texts)
    if not text and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(check.array(messages, "messages")):
        param = f"messages.{i}"
        message = check.object(message, param)
        role = message.get("role")
        content = message.get("content")
        if content is None:
            raise missing(f"{param}.content", "Field required.")
        if role == "user":
            out += _user_messages(content, param)
        elif role == "assistant":
            out += _assistant_messages(content, param)
        else:
            raise invalid(f"{param}.role", "Input should be 'user' or 'assistant' (the system "
                                           "prompt goes in the top-level system field).")
    return out


# --- tools and options ---------------------------------------------------------------------

def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(check.array(tools, "tools")):
        param = f"tools.{i}"
        tool = check.object(tool, param)
        if tool.get("type") not in (None, "custom"):
            raise unsupported(f"{param}.type", f"Tools of type {tool['type']!r} (Anthropic's "
                                                f"server and built-in tools) are not "
                                                f"supported; define a custom tool instead.")
        function: dict[str, Any] = {
            "name": check.string(tool.get("name"), f"{param}.name", empty=False),
            "parameters": check.object(tool.get("input_schema"), f"{param}.input_schema")}
        if tool.get("description") is not None:
            function["description"] = check.string(tool["description"], f"{param}.description")
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    """Anthropic's tool_choice -> (chat ``tool_choice``, whether parallel calls are off)."""
    choice = check.object(choice, "tool_choice")
    kind = choice.get("type")
    chat: Any
    if kind == "auto":
        chat = "auto"
    elif kind == "any":
        chat = "required"
    elif kind == "none":
        chat = "none"
    elif kind == "tool":
        chat = {"type": "function", "function": {
            "name": check.string(choice.get("name"), "tool_choice.name", empty=False)}}
    else:
        raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'.")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        check.boolean(disable, "tool_choice.disable_parallel_tool_use")
    return chat, disable is True


def _check_thinking(thinking: Any) -> None:
    thinking = check.object(thinking, "thinking")
    if thinking.get("type") not in THINKING_TYPES:
        raise invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'.")
    if thinking["type"] == "enabled":
        check.integer(thinking.get("budget_tokens"), "thinking.budget_tokens", 1024)


def _response_format(config: Any) -> dict[str, Any] | None:
    config = check.object(config, "output_config")
    fmt = config.get("format")
    if fmt is None:
        return None
    fmt = check.object(fmt, "output_config.format")
    if fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type", "Input should be 'json_schema'.")
    schema = check.object(fmt.get("schema"), "output_config.format.schema")
    return {"type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True}}


def _check_fields(body: dict[str, Any]) -> None:
    for name in body:
        if name in REFUSED:
            raise unsupported(name, "This field is not supported by this gateway.")
        if name not in TRANSLATED and name not in DROPPED:
            raise unknown(name, "Extra inputs are not permitted.")


def messages_to_chat(body: Any) -> dict[str, Any]:
    """Translate a Messages API request body into a chat completion body (see above).

    Raises InvalidRequestError (400) with an Anthropic-style ``param`` for invalid input and
    for what the chat pipeline cannot do.
    """
    body = check.object(body, "body")
    _check_fields(body)
    model = check.string(_required(body, "model"), "model", empty=False)
    max_tokens = check.integer(_required(body, "max_tokens"), "max_tokens", 1)
    messages: list[dict[str, Any]] = []
    if body.get("system") is not None:
        system = _text_of_blocks(body["system"], "system")
        if system:
            messages.append({"role": "system", "content": system})
    turns = _messages(_required(body, "messages"))
    if not turns:
        raise invalid("messages", "At least one message with content is required.")
    out: dict[str, Any] = {"model": model, "messages": messages + turns,
                           "max_completion_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = check.number(body[name], name, 0, 1)
    if body.get("top_k") is not None:
        check.integer(body["top_k"], "top_k", 0)
    if body.get("thinking") is not None:
        _check_thinking(body["thinking"])
    stops = body.get("stop_sequences")
    if stops is not None:
        stops = [check.string(s, f"stop_sequences.{i}") for i, s in
                 enumerate(check.array(stops, "stop_sequences"))]
        if len(stops) > MAX_STOP_SEQUENCES:
            raise unsupported("stop_sequences", f"At most {MAX_STOP_SEQUENCES} stop sequences "
                                                 f"are supported.")
        if stops:
            out["stop"] = stops
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    choice = _tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None
    if tools:  # the chat API refuses tool_choice and parallel_tool_calls without tools
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice[0]
            if choice[1]:
                out["parallel_tool_calls"] = False
    metadata = {} if body.get("metadata") is None else check.object(body["metadata"], "metadata")
    for name in metadata:
        if name != "user_id":
            raise unknown(f"metadata.{name}", "Extra inputs are not permitted.")
    if metadata.get("user_id") is not None:
        out["user"] = check.string(metadata["user_id"], "metadata.user_id")
    if body.get("output_config") is not None:
        response_format = _response_format(body["output_config"])
        if response_format is not None:
            out["response_format"] = response_format
    if body.get("stream") is not None and check.boolean(body["stream"], "stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def count_tokens(body: Any) -> dict[str, int]:
    """The answer of Anthropic's ``/v1/messages/count_tokens`` for ``body`` (a Messages
    request without ``max_tokens``): the gateway's own estimate of the chat messages it
    becomes, the same estimate rate limits use (tool definitions are not counted).
    """
    chat = messages_to_chat({**check.object(body, "body"), "max_tokens": 1})
    return {"input_tokens": estimate_message_tokens(chat["messages"])}
