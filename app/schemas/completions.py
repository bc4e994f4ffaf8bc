"""``POST /v1/completions`` (legacy text completions): request validation and the documented
answers. Unknown fields pass through to the upstream untouched, its answer is relayed as is.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from app.schemas.chat import MAX_OUTPUT_TOKENS, StopField, StreamOptionsSchema, UsageSchema
from app.schemas.common import Int64, StrictBoolean, StrictFloat
from app.schemas.prompts import TextOrTokens


class CompletionRequestSchema(Schema):
    class Meta:
        unknown = INCLUDE

    model = fields.String(required=True, validate=validate.Length(min=1, max=256))
    prompt = TextOrTokens(required=True, allow_none=True)
    stream = StrictBoolean(allow_none=True)
    stream_options = fields.Nested(StreamOptionsSchema, allow_none=True)
    max_tokens = Int64(minimum=0, maximum=MAX_OUTPUT_TOKENS, allow_none=True)
    n = Int64(minimum=1, maximum=128, allow_none=True)
    best_of = Int64(minimum=0, maximum=20, allow_none=True)
    echo = StrictBoolean(allow_none=True)
    logprobs = Int64(minimum=0, maximum=5, allow_none=True)
    suffix = fields.String(allow_none=True)
    temperature = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=2))
    top_p = StrictFloat(allow_none=True, validate=validate.Range(min=0, max=1))
    presence_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictFloat(allow_none=True, validate=validate.Range(min=-2, max=2))
    stop = StopField(allow_none=True)
    seed = Int64(allow_none=True)
    logit_bias = fields.Dict(allow_none=True)
    user = fields.String()


class _Relayed(Schema):
    class Meta:
        unknown = INCLUDE


class CompletionChoiceSchema(_Relayed):
    index = fields.Integer(required=True)
    text = fields.String(required=True)
    finish_reason = fields.String(required=True, allow_none=True, metadata={
        "description": "`stop`, `length` or `content_filter`; null in a stream's chunks "
                       "before the last"})
    logprobs = fields.Dict(required=True, allow_none=True)


class CompletionSchema(_Relayed):
    """The answer, and (the same shape) each chunk of a stream."""

    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["text_completion"]})
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(CompletionChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema, allow_none=True)
    system_fingerprint = fields.String(allow_none=True)


class CompletionEventSchema(_Relayed):
    """One server-sent event of a stream (``text/event-stream``): ``data`` holds a
    ``Completion`` chunk as JSON, an error envelope after a failure, or ``[DONE]`` last."""

    data = fields.String(required=True, metadata={"anyOf": [
        {"const": "[DONE]"},
        {"contentMediaType": "application/json", "contentSchema": {"anyOf": [
            {"$ref": "#/components/schemas/Completion"},
            {"$ref": "#/components/schemas/Error"}]}}]})
