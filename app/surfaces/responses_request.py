"""OpenAI Responses API request -> the chat completion body the chat pipeline routes.

:func:`responses_to_chat` validates what it translates and raises
:class:`~app.errors.InvalidRequestError` (OpenAI's 400 envelope) with ``param`` naming the
field the way OpenAI does (``input[2].content[0].type``, ``tools[0].type``).

Mapped: ``instructions`` -> a system message first (not carried over from earlier responses,
as OpenAI does); ``input`` as a string (one user message) or a list of items: ``message``
items (also without ``type``) of role user/system/developer/assistant with string content or
``input_text`` / ``input_image`` / ``input_file`` (inline data) / ``output_text`` /
``refusal`` parts; ``function_call`` items -> the assistant's ``tool_calls`` (joined to the
assistant message just before them); ``function_call_output`` items -> ``tool`` messages
(images or files in an output follow in a user message naming the call, after the tool
messages, since a chat tool message holds text only); ``tools`` of type ``function`` ->
chat function tools (``strict`` kept when given); ``tool_choice`` (auto/none/required, a
function, ``allowed_tools``); ``text.format`` (``json_schema`` / ``json_object`` -> the
``response_format``; ``text``: nothing) and ``text.verbosity``; ``max_output_tokens`` ->
``max_completion_tokens``; ``temperature``; ``top_p``; ``parallel_tool_calls`` (with tools
only, as chat requires); ``reasoning.effort`` -> ``reasoning_effort``; ``user``,
``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention``, ``service_tier``;
``stream`` -> ``stream`` with usage in the stream (the surface reports it).

Accepted, not sent upstream: ``metadata``, ``store`` and ``previous_response_id`` (echoed in
the response; the stored conversation is prepended by :mod:`app.surfaces.responses_store`),
``include`` (nothing it can ask for exists without hosted tools and reasoning items),
``stream_options``, ``max_tool_calls`` (it limits built-in tools), ``reasoning.summary``
(chat models return no summaries), ``background: false``, ``truncation: "disabled"``.
``reasoning`` items in the input are dropped: they are opaque to any chat upstream.

Refused with a 400 naming the field: hosted tools (``web_search``, ``file_search``,
``computer_use_preview``, ``code_interpreter``, ``mcp``, ``custom``, ... -> ``tools[N].type``)
and tool choices naming them, ``background: true``, ``truncation: "auto"``,
``conversation``, ``prompt``, ``top_logprobs``, ``context_management``, ``item_reference``
and every other item type (``input[N].type``), ``file_id`` and ``file_url`` inputs (the
gateway stores no files), and unknown fields (as OpenAI does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.schemas.chat import MAX_OUTPUT_TOKENS
from app.surfaces.chat import tool_attachments
from app.surfaces.checks import (
    Checks,
    invalid,
    missing,
    openai_wording,
    unknown,
    unsupported,
)

TRANSLATED = frozenset(("model", "input", "instructions", "tools", "tool_choice", "text",
                        "max_output_tokens", "temperature", "top_p", "parallel_tool_calls",
                        "reasoning", "user", "safety_identifier", "prompt_cache_key",
                        "prompt_cache_retention", "service_tier", "stream"))
NOT_SENT = frozenset(("metadata", "store", "previous_response_id", "include", "stream_options",
                      "max_tool_calls", "background", "truncation"))
PASSED = ("user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
          "service_tier")
MESSAGE_ROLES = frozenset(("user", "system", "developer", "assistant"))
MIN_OUTPUT_TOKENS = 16  # OpenAI's own minimum for max_output_tokens


check = Checks(openai_wording)


# --- items ---------------------------------------------------------------------------------

def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if value is None:
        raise missing("input", "Missing required parameter: 'input'.")
    if isinstance(value, str):
        return [{"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": value}]}]
    return [check.object(item, f"input[{i}]") for i, item in enumerate(check.array(value, "input"))]


def _file_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if part.get("type") == "input_image":
        if part.get("image_url") is None:
            raise unsupported(f"{param}.file_id", "Images must be given by image_url (a URL "
                                                   "or a data URL); file ids are not supported.")
        image: dict[str, Any] = {"url": check.string(part["image_url"], f"{param}.image_url")}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if part.get("file_data") is None:
        raise unsupported(f"{param}.file_data", "Files must be given inline as file_data; "
                                                 "file ids and URLs are not supported.")
    file = {"file_data": check.string(part["file_data"], f"{param}.file_data")}
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _parts(content: Any, role: str, param: str) -> list[dict[str, Any]]:
    """Message content parts as chat parts (what the role can hold in chat)."""
    out = []
    for j, part in enumerate(check.array(content, param)):
        where = f"{param}[{j}]"
        part = check.object(part, where)
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            out.append({"type": "text", "text": check.string(part.get("text"), f"{where}.text")})
        elif kind == "refusal" and role == "assistant":
            out.append({"type": "refusal",
                        "refusal": check.string(part.get("refusal"), f"{where}.refusal")})
        elif kind in ("input_image", "input_file") and role == "user":
            out.append(_file_part(part, where))
        else:
            raise unsupported(f"{where}.type", f"Content of type {kind!r} is not supported in "
                                                f"{role} messages.")
    return out


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise invalid(f"{param}.role", "Invalid value: expected one of 'user', 'system', "
                                       "'developer', 'assistant'.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = _parts(content, role, f"{param}.content")
    if all(p["type"] == "text" for p in parts) and (role != "user" or len(parts) == 1):
        # One string is what every chat server reads; user turns keep several parts apart.
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _output_parts(output: Any, param: str) -> tuple[str, list[dict[str, Any]]]:
    """A function call output -> its text, and the images/files it returned."""
    if isinstance(output, str):
        return output, []
    texts, files = [], []
    for part in _parts(output, "user", param):
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            files.append(part)
    return "\n".join(texts), files


def items_to_messages(items: Sequence[dict[str, Any]], *, param: str = "input"
                      ) -> list[dict[str, Any]]:
    """Responses input items -> chat messages (see the module docstring)."""
    out: list[dict[str, Any]] = []
    returned: list[dict[str, Any]] = []  # files from tool outputs, sent after the tool messages
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind != "function_call_output" and returned:
            out.append({"role": "user", "content": returned})
            returned = []
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            call = {"id": check.string(item.get("call_id"), f"{where}.call_id"), "type": "function",
                    "function": {"name": check.string(item.get("name"), f"{where}.name"),
                                 "arguments": check.string(item.get("arguments"),
                                                   f"{where}.arguments")}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = check.string(item.get("call_id"), f"{where}.call_id")
            text, files = _output_parts(item.get("output"), f"{where}.output")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
            if files:
                returned += tool_attachments(call_id, files)
        elif kind != "reasoning":
            raise unsupported(f"{where}.type", f"Input items of type {kind!r} are not "
                                                f"supported.")
    if returned:
        out.append({"role": "user", "content": returned})
    return out


# --- tools and options ---------------------------------------------------------------------

def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(check.array(tools, "tools")):
        param = f"tools[{i}]"
        tool = check.object(tool, param)
        if tool.get("type") != "function":
            raise unsupported(f"{param}.type", f"Tools of type {tool.get('type')!r} are not "
                                                f"supported; only function tools are.")
        function: dict[str, Any] = {"name": check.string(tool.get("name"), f"{param}.name")}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        out.append({"type": "function", "function": function})
    return out


def _named(tool: Any, param: str) -> dict[str, Any]:
    tool = check.object(tool, param)
    if tool.get("type") != "function":
        raise unsupported(f"{param}.type", "Only function tools can be chosen.")
    name = check.string(tool.get("name"), f"{param}.name")
    return {"type": "function", "function": {"name": name}}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    choice = check.object(choice, "tool_choice")
    if choice.get("type") == "allowed_tools":
        tools = check.array(choice.get("tools"), "tool_choice.tools")
        return {"type": "allowed_tools", "allowed_tools": {
            "mode": choice.get("mode", "auto"),
            "tools": [_named(t, f"tool_choice.tools[{i}]") for i, t in enumerate(tools)]}}
    return _named(choice, "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = check.object(text, "text").get("format")
    if fmt is None:
        return None
    fmt = check.object(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise invalid("text.format.type", "Invalid value: expected 'text', 'json_object' or "
                                          "'json_schema'.")
    spec: dict[str, Any] = {"name": check.string(fmt.get("name"), "text.format.name"),
                            "schema": check.object(fmt.get("schema"), "text.format.schema")}
    for name in ("strict", "description"):
        if fmt.get(name) is not None:
            spec[name] = fmt[name]
    return {"type": "json_schema", "json_schema": spec}


def _check_fields(body: dict[str, Any]) -> None:
    for name in body:
        if name not in TRANSLATED and name not in NOT_SENT:
            raise unknown(name, f"Unknown or unsupported parameter: '{name}'.")
    if body.get("background") is not None and check.boolean(body["background"], "background"):
        raise unsupported("background", "Background responses are not supported.")
    if body.get("truncation") not in (None, "disabled"):
        raise unsupported("truncation", "Only truncation 'disabled' is supported.")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16
                                 or not all(isinstance(v, str) for v in metadata.values())):
        raise invalid("metadata", "Invalid 'metadata': expected at most 16 string values.")
    for name in ("store", "stream"):
        if body.get(name) is not None:
            check.boolean(body[name], name)
    if body.get("previous_response_id") is not None:
        check.string(body["previous_response_id"], "previous_response_id")


def responses_to_chat(body: Any, *, history: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Translate a Responses API request into a chat completion body (see above).

    ``history`` is the stored conversation of ``previous_response_id``
    (:func:`app.surfaces.responses_store.load_history`), sent before this request's input.
    Raises InvalidRequestError (400) for invalid input and what chat cannot do.
    """
    body = check.object(body, "body")
    _check_fields(body)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise missing("model", "Missing required parameter: 'model'.")
    messages = items_to_messages(input_items(body))
    if history:
        messages = items_to_messages(history, param="previous_response_id") + messages
    if body.get("instructions") is not None:
        messages.insert(0, {"role": "system",
                            "content": check.string(body["instructions"], "instructions")})
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = check.integer(body["max_output_tokens"],
                                                     "max_output_tokens", MIN_OUTPUT_TOKENS,
                                                     MAX_OUTPUT_TOKENS)
    if body.get("temperature") is not None:
        out["temperature"] = check.number(body["temperature"], "temperature", 0, 2)
    if body.get("top_p") is not None:
        out["top_p"] = check.number(body["top_p"], "top_p", 0, 1)
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        check.boolean(parallel, "parallel_tool_calls")
    if tools:
        out["tools"] = tools
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    if body.get("tool_choice") is not None:
        choice = _tool_choice(body["tool_choice"])
        if tools:  # chat refuses a tool_choice without tools; "none" of nothing is nothing
            out["tool_choice"] = choice
    if body.get("text") is not None:
        response_format = _response_format(body["text"])
        if response_format is not None:
            out["response_format"] = response_format
        if body["text"].get("verbosity") is not None:
            out["verbosity"] = check.string(body["text"]["verbosity"], "text.verbosity")
    if body.get("reasoning") is not None:
        effort = check.object(body["reasoning"], "reasoning").get("effort")
        if effort is not None:
            out["reasoning_effort"] = check.string(effort, "reasoning.effort")
    for name in PASSED:
        if body.get(name) is not None:
            out[name] = check.string(body[name], name)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out
