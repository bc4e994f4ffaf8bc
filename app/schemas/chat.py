"""Chat completion request validation and the documented response shapes.

Only the fields the gateway relies on are validated; every other field passes through to the
upstream untouched (OpenAI adds parameters often). Validation never rewrites the body: the
original dict is what is forwarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, types, validate, validates_schema

from app.schemas.common import INT64_MAX, INT64_MIN, Int64, StrictBoolean, StrictFloat
from app.schemas.common import first_error as first_error  # re-exported for app.api.chat

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES = frozenset(ROLES)
_CONTENT_REQUIRED = frozenset(("system", "developer", "user"))
# max_tokens counts against the key's tokens-per-minute (a 64-bit counter in Redis) with the
# prompt: 2**31 - 1 keeps any realistic window's sum far inside it, and no model writes more.
MAX_OUTPUT_TOKENS = 2**31 - 1


class ContentField(fields.Field[Any]):
    """Message content: a string, a list of content parts (objects), or null."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"anyOf": [{"type": "string"},
                                             {"type": "array", "items": {"type": "object"}},
                                             {"type": "null"}]}, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        raise ValidationError("Must be a string or a list of content parts.")


class StopField(fields.Field[Any]):
    """Up to 4 stop sequences: a string or a list of strings."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"anyOf": [
            {"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4},
            {"type": "null"}]}, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
            return value
        raise ValidationError("Must be a string or a list of at most 4 strings.")


class MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE
        # _content_present, for the OpenAPI document (app.api.spec.SchemaExtrasPlugin)
        openapi = {"if": {"properties": {"role": {"enum": sorted(_CONTENT_REQUIRED)}},
                          "required": ["role"]},
                   "then": {"required": ["content"],
                            "properties": {"content": {"not": {"type": "null"}}}}}

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = ContentField(allow_none=True)
    name = fields.String()
    tool_call_id = fields.String()
    tool_calls = fields.List(fields.Dict())

    @validates_schema
    def _content_present(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("content") is None and data.get("role") in ("system", "developer", "user"):
            raise ValidationError("Missing content.", field_name="content")


class StreamOptionsSchema(Schema):
    class Meta:
        unknown = INCLUDE

    include_usage = StrictBoolean()


class ChatCompletionRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(required=True, validate=validate.Length(min=1, max=256))
    messages = fields.List(fields.Nested(MessageSchema), required=True,
                           validate=validate.Length(min=1))
    stream = StrictBoolean(allow_none=True)
    stream_options = fields.Nested(StreamOptionsSchema, allow_none=True)
    max_tokens = Int64(minimum=1, maximum=MAX_OUTPUT_TOKENS, allow_none=True)
    max_completion_tokens = Int64(minimum=1, maximum=MAX_OUTPUT_TOKENS, allow_none=True)
    n = Int64(minimum=1, maximum=128, allow_none=True)
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    stop = StopField(allow_none=True)
    seed = Int64(allow_none=True)
    user = fields.String()
    tools = fields.List(fields.Dict())
    tool_choice = fields.Raw()
    response_format = fields.Dict()
    logprobs = StrictBoolean(allow_none=True)
    top_logprobs = Int64(minimum=0, maximum=20, allow_none=True)

    def validate(self, data: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                 many: bool | None = None,
                 partial: bool | types.StrSequenceOrSet | None = None) -> dict[str, list[str]]:
        """``{}`` at once for a body :func:`is_plainly_valid` accepts; else marshmallow's answer.

        The schema stays the single source of validation and of every error message: the fast
        path only ever says "valid", and only for shapes the schema accepts too.
        """
        if not many and partial is None and is_plainly_valid(data):
            return {}
        return super().validate(data, many=many, partial=partial)


# --- fast path: plain-Python checks of the common valid shapes (marshmallow costs ~9% of a
# relayed request's CPU). Anything unusual returns False and goes through the schema.

def _is_str(v: Any) -> bool:
    return type(v) is str


def _opt_bool(v: Any) -> bool:
    return v is None or type(v) is bool


def _opt_output_tokens(v: Any) -> bool:
    return v is None or (type(v) is int and 1 <= v <= MAX_OUTPUT_TOKENS)


def _opt_int(v: Any) -> bool:
    return v is None or (type(v) is int and INT64_MIN <= v <= INT64_MAX)


def _opt_number(lo: float, hi: float) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        # NaN compares False and infinities are out of range: both go to the schema.
        return v is None or (type(v) in (int, float) and lo <= v <= hi)

    return check


def _opt_n(v: Any) -> bool:
    return v is None or (type(v) is int and 1 <= v <= 128)


def _opt_stop(v: Any) -> bool:
    return v is None or type(v) is str


def _opt_stream_options(v: Any) -> bool:
    return v is None or (type(v) is dict and ("include_usage" not in v
                                              or type(v["include_usage"]) is bool))


def _model(v: Any) -> bool:
    return type(v) is str and 1 <= len(v) <= 256


def _messages(v: Any) -> bool:
    if type(v) is not list or not v:
        return False
    for m in v:
        if type(m) is not dict:
            return False
        role = m.get("role")
        if type(role) is not str or role not in _ROLES:
            return False
        content = m.get("content")
        if content is None:
            if role in _CONTENT_REQUIRED:
                return False
        elif type(content) is not str:
            if type(content) is not list or any(type(p) is not dict for p in content):
                return False
        if (len(m) != 2 or "content" not in m) and not _message_extras(m):
            return False
    return True


def _message_extras(m: dict[str, Any]) -> bool:
    for key in ("name", "tool_call_id"):
        if key in m and type(m[key]) is not str:
            return False
    calls = m.get("tool_calls", [])
    return type(calls) is list and all(type(c) is dict for c in calls)


# Declared fields checked here; any other declared field sends the body through the schema.
_FAST_CHECKS: dict[str, Callable[[Any], bool]] = {
    "model": _model,
    "messages": _messages,
    "stream": _opt_bool,
    "stream_options": _opt_stream_options,
    "max_tokens": _opt_output_tokens,
    "max_completion_tokens": _opt_output_tokens,
    "n": _opt_n,
    "temperature": _opt_number(0, 2),
    "top_p": _opt_number(0, 1),
    "presence_penalty": _opt_number(-2, 2),
    "frequency_penalty": _opt_number(-2, 2),
    "stop": _opt_stop,
    "seed": _opt_int,
    "user": _is_str,
    "logprobs": _opt_bool,
}
_DECLARED = frozenset(ChatCompletionRequestSchema._declared_fields)


def is_plainly_valid(data: Any) -> bool:
    """True only for a chat body the schema certainly accepts (common shapes, exact types).

    False means "not sure", never "invalid": the caller then asks the marshmallow schema.
    """
    if type(data) is not dict or "model" not in data or "messages" not in data:
        return False
    for key, value in data.items():
        check = _FAST_CHECKS.get(key)
        if check is None:
            if key in _DECLARED:
                return False
        elif not check(value):
            return False
    return True


# --- response shapes (documented in /openapi.json; the gateway relays upstream JSON as is,
# so every object may carry more fields than these: OpenAI adds them often) ---


class _Relayed(Schema):
    class Meta:
        unknown = INCLUDE

class UsageSchema(_Relayed):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)


class ResponseMessageSchema(_Relayed):
    role = fields.String(required=True)
    content = fields.String(required=True, allow_none=True)
    refusal = fields.String(allow_none=True)
    tool_calls = fields.List(fields.Dict())


class ChoiceSchema(_Relayed):
    index = fields.Integer(required=True)
    message = fields.Nested(ResponseMessageSchema, required=True)
    finish_reason = fields.String(required=True, allow_none=True)
    logprobs = fields.Dict(allow_none=True)


class ChatCompletionSchema(_Relayed):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["chat.completion"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema)
    system_fingerprint = fields.String(allow_none=True)


class ChunkChoiceSchema(_Relayed):
    index = fields.Integer(required=True)
    delta = fields.Dict(required=True)
    finish_reason = fields.String(required=True, allow_none=True)
    logprobs = fields.Dict(allow_none=True)


class ChatCompletionChunkSchema(_Relayed):
    """One ``data:`` event of a stream (``text/event-stream``), ending with ``data: [DONE]``."""

    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["chat.completion.chunk"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChunkChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema, allow_none=True)


class ChatCompletionEventSchema(_Relayed):
    """One server-sent event of a stream (``text/event-stream``): ``data`` holds a
    ``ChatCompletionChunk`` as JSON, an error envelope after a failure, or ``[DONE]`` last
    (the other SSE fields, ``event``, ``id``, ``retry``, are not used)."""

    data = fields.String(required=True, metadata={"anyOf": [
        {"const": "[DONE]"},
        {"contentMediaType": "application/json", "contentSchema": {"anyOf": [
            {"$ref": "#/components/schemas/ChatCompletionChunk"},
            {"$ref": "#/components/schemas/Error"}]}}]})
