"""Chat completion request validation and the documented response shapes.

Only the fields the gateway relies on are validated; every other field passes through to the
upstream untouched (OpenAI adds parameters often). Validation never rewrites the body: the
original dict is what is forwarded.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.schemas.common import StrictBoolean, StrictFloat

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class ContentField(fields.Field[Any]):
    """Message content: a string, a list of content parts (objects), or null."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        raise ValidationError("Must be a string or a list of content parts.")


class StopField(fields.Field[Any]):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
            return value
        raise ValidationError("Must be a string or a list of at most 4 strings.")


class MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE

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
    max_tokens = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1))
    max_completion_tokens = fields.Integer(strict=True, allow_none=True,
                                           validate=validate.Range(min=1))
    n = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=128))
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    stop = StopField(allow_none=True)
    seed = fields.Integer(strict=True, allow_none=True)
    user = fields.String()
    tools = fields.List(fields.Dict())
    tool_choice = fields.Raw()
    response_format = fields.Dict()
    logprobs = StrictBoolean(allow_none=True)
    top_logprobs = fields.Integer(strict=True, allow_none=True,
                                  validate=validate.Range(min=0, max=20))


# --- response shapes (documented in /openapi.json; the gateway relays upstream JSON as is) ---

class UsageSchema(Schema):
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)


class ResponseMessageSchema(Schema):
    role = fields.String(required=True)
    content = fields.String(required=True, allow_none=True)
    refusal = fields.String(allow_none=True)
    tool_calls = fields.List(fields.Dict())


class ChoiceSchema(Schema):
    index = fields.Integer(required=True)
    message = fields.Nested(ResponseMessageSchema, required=True)
    finish_reason = fields.String(required=True, allow_none=True)
    logprobs = fields.Dict(allow_none=True)


class ChatCompletionSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["chat.completion"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema)
    system_fingerprint = fields.String(allow_none=True)


class ChunkChoiceSchema(Schema):
    index = fields.Integer(required=True)
    delta = fields.Dict(required=True)
    finish_reason = fields.String(required=True, allow_none=True)
    logprobs = fields.Dict(allow_none=True)


class ChatCompletionChunkSchema(Schema):
    """One ``data:`` event of a stream (``text/event-stream``), ending with ``data: [DONE]``."""

    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["chat.completion.chunk"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChunkChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema, allow_none=True)


def first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first (param path, message) in marshmallow's nested errors, e.g. messages[0].role."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if isinstance(key, int):
            path = f"{prefix}[{key}]"
        elif key == "_schema":
            path = prefix
        else:
            path = f"{prefix}.{key}" if prefix else str(key)
        return first_error(value, path)
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], str):
            return prefix, messages[0]
        return first_error(messages[0], prefix)
    return prefix, str(messages)
