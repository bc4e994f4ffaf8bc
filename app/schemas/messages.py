"""Anthropic's Messages API as the gateway serves it (``/v1/messages``), for the OpenAPI
document. Requests are validated by the translation (:mod:`app.surfaces.messages_request`),
which names the field at fault; these schemas only describe them."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields

_ANY = fields.Raw(metadata={"type": "object"})


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class AnthropicMessageParamSchema(_Open):
    role = fields.String(required=True, metadata={"enum": ["user", "assistant"]})
    content = fields.Raw(required=True, metadata={
        "description": "A string, or content blocks: text, image, document, tool_use, "
                       "tool_result"})


class MessagesRequestSchema(_Open):
    model = fields.String(required=True)
    max_tokens = fields.Integer(required=True, metadata={"minimum": 1})
    messages = fields.List(fields.Nested(AnthropicMessageParamSchema), required=True)
    system = fields.Raw(metadata={"description": "A string or text blocks"})
    stream = fields.Boolean()
    temperature = fields.Float(metadata={"minimum": 0, "maximum": 1})
    top_p = fields.Float(metadata={"minimum": 0, "maximum": 1})
    top_k = fields.Integer(metadata={"minimum": 0})
    stop_sequences = fields.List(fields.String())
    tools = fields.List(fields.Dict())
    tool_choice = fields.Dict()
    metadata = fields.Dict()


class CountTokensRequestSchema(_Open):
    model = fields.String(required=True)
    messages = fields.List(fields.Nested(AnthropicMessageParamSchema), required=True)
    system = fields.Raw()
    tools = fields.List(fields.Dict())


class CountTokensSchema(Schema):
    input_tokens = fields.Integer(required=True, metadata={
        "description": "The gateway's estimate (the one its rate limits use), not the "
                       "upstream's tokenizer; tool definitions are not counted"})


class AnthropicUsageSchema(_Open):
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    cache_creation_input_tokens = fields.Integer(allow_none=True)
    cache_read_input_tokens = fields.Integer(allow_none=True)


class AnthropicMessageSchema(_Open):
    id = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": ["message"]})
    role = fields.String(required=True, metadata={"enum": ["assistant"]})
    model = fields.String(required=True)
    content = fields.List(fields.Dict(), required=True)
    stop_reason = fields.String(allow_none=True, required=True, metadata={
        "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
                 "refusal", None]})
    stop_sequence = fields.String(allow_none=True, required=True)
    usage = fields.Nested(AnthropicUsageSchema, required=True)


class AnthropicEventSchema(_Open):
    type = fields.String(required=True, metadata={"enum": [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop", "ping", "error"]})


class AnthropicErrorDetailSchema(Schema):
    type = fields.String(required=True)
    message = fields.String(required=True)


class AnthropicErrorSchema(Schema):
    type = fields.String(required=True, metadata={"enum": ["error"]})
    error = fields.Nested(AnthropicErrorDetailSchema, required=True)
