"""``POST /v1/embeddings``: request validation and the documented answer.

As for chat, only what the gateway relies on is validated and unknown fields pass through
to the upstream untouched; the upstream's answer is relayed byte for byte (with
``encoding_format: base64`` each ``embedding`` is a base64 string of little-endian float32
values, exactly as the upstream wrote it).
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from app.schemas.common import Int64
from app.schemas.prompts import TextOrTokens

MAX_INPUTS = 2048  # OpenAI's limit of inputs per request


class EmbeddingRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(required=True, validate=validate.Length(min=1, max=256))
    input = TextOrTokens(required=True, min_length=1, max_items=MAX_INPUTS, metadata={
        "description": f"A string, an array of up to {MAX_INPUTS} strings, a token array, or "
                       f"an array of up to {MAX_INPUTS} token arrays (strings not empty)"})
    encoding_format = fields.String(validate=validate.OneOf(["float", "base64"]), metadata={
        "description": "`float` (default): arrays of numbers; `base64`: each vector as "
                       "base64 of little-endian float32 values"})
    dimensions = Int64(minimum=1, metadata={
        "description": "The number of dimensions of the vectors (models that support it)"})
    user = fields.String()


class _Relayed(Schema):
    class Meta:
        unknown = INCLUDE


class EmbeddingSchema(_Relayed):
    object = fields.String(required=True, metadata={"enum": ["embedding"]})
    index = fields.Integer(required=True)
    embedding = fields.Raw(required=True, metadata={
        "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}],
        "description": "The vector: numbers, or with `encoding_format: base64` a base64 "
                       "string of little-endian float32 values"})


class EmbeddingUsageSchema(_Relayed):
    prompt_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)


class EmbeddingListSchema(_Relayed):
    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(EmbeddingSchema), required=True)
    model = fields.String(required=True)
    usage = fields.Nested(EmbeddingUsageSchema, required=True)
