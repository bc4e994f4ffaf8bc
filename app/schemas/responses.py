"""OpenAI's Responses API as the gateway serves it (``/v1/responses``), for the OpenAPI
document. Requests are validated by the translation (:mod:`app.surfaces.responses_request`),
which names the field at fault; the request schema says what it accepts (an unknown field is
a 400, as at OpenAI). Answers are OpenAI's shapes (fields it adds are relayed)."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from app.schemas.chat import MAX_OUTPUT_TOKENS

MIN_OUTPUT_TOKENS = 16  # as the translation (OpenAI's own minimum)
# The events a translated stream has (a relayed one has whatever the upstream sends).
EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
          "response.content_part.added", "response.output_text.delta",
          "response.output_text.done", "response.content_part.done",
          "response.function_call_arguments.delta", "response.function_call_arguments.done",
          "response.output_item.done", "response.completed", "response.incomplete",
          "response.failed", "error"]


def _obj(properties: dict[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


_STRING = {"type": "string"}
_TEXT_PART = _obj({"type": {"enum": ["input_text", "output_text"]}, "text": _STRING},
                  "type", "text")
_IMAGE_PART = _obj({"type": {"enum": ["input_image"]}, "image_url": _STRING,
                    "detail": {}}, "type", "image_url",
                   description="A URL or a data: URL (file ids are not supported)")
_FILE_PART = _obj({"type": {"enum": ["input_file"]}, "file_data": _STRING,
                   "filename": {}}, "type", "file_data",
                  description="Inline data (file ids and URLs are not supported)")
_REFUSAL_PART = _obj({"type": {"enum": ["refusal"]}, "refusal": _STRING}, "type", "refusal")
_USER_PARTS = {"type": "array", "items": {"oneOf": [_TEXT_PART, _IMAGE_PART, _FILE_PART]}}


def _message(roles: list[str], parts: list[dict[str, Any]]) -> dict[str, Any]:
    return _obj({"type": {"enum": ["message"]}, "role": {"enum": roles},
                 "content": {"oneOf": [_STRING, {"type": "array",
                                                 "items": {"oneOf": parts}}]}},
                "role", "content")


INPUT_ITEM = {"oneOf": [
    _message(["user"], [_TEXT_PART, _IMAGE_PART, _FILE_PART]),
    _message(["system", "developer"], [_TEXT_PART]),
    _message(["assistant"], [_TEXT_PART, _REFUSAL_PART]),
    _obj({"type": {"enum": ["function_call"]}, "call_id": _STRING, "name": _STRING,
          "arguments": _STRING}, "type", "call_id", "name", "arguments"),
    _obj({"type": {"enum": ["function_call_output"]}, "call_id": _STRING,
          "output": {"oneOf": [_STRING, _USER_PARTS]}}, "type", "call_id", "output"),
    _obj({"type": {"enum": ["reasoning"]}}, "type",
         description="Dropped for chat upstreams; relayed with its encrypted_content"),
]}
_FUNCTION = _obj({"type": {"enum": ["function"]}, "name": _STRING}, "type", "name")
TOOL_CHOICE = {"oneOf": [
    {"type": "null"},
    {"enum": ["auto", "none", "required"]},
    _FUNCTION,
    _obj({"type": {"enum": ["allowed_tools"]}, "mode": {},
          "tools": {"type": "array", "items": _FUNCTION}}, "type", "tools"),
]}
TEXT_FORMAT = {"oneOf": [
    {"type": "null"},
    _obj({"type": {"enum": ["text", "json_object"]}}, "type"),
    _obj({"type": {"enum": ["json_schema"]}, "name": _STRING, "schema": {"type": "object"},
          "strict": {}, "description": {}},
         "type", "name", "schema"),
]}


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class _Closed(Schema):
    class Meta:
        unknown = RAISE


def _nullable(field: type[fields.Field[Any]], **kwargs: Any) -> Any:
    return field(allow_none=True, **kwargs)


class FunctionToolSchema(_Open):
    type = fields.String(required=True, metadata={"enum": ["function"], "description":
                         "Only function tools: hosted tools (web_search, file_search, mcp, "
                         "...) are a 400 naming tools[N].type"})
    name = fields.String(required=True)
    description = fields.Raw()
    parameters = fields.Raw()
    strict = fields.Raw()


class TextSchema(_Open):
    format = fields.Raw(metadata=TEXT_FORMAT)
    verbosity = _nullable(fields.String)


class ReasoningSchema(_Open):
    effort = _nullable(fields.String)
    summary = fields.Raw(metadata={"description": "Accepted; chat models return none"})


class RouteOptionsSchema(_Closed):
    fallbacks = fields.Boolean(metadata={"description": "false: no fallback groups"})


class ResponsesRequestSchema(_Closed):
    model = fields.String(required=True, validate=validate.Length(min=1))
    input = fields.Raw(required=True, metadata={
        "oneOf": [_STRING, {"type": "array", "items": INPUT_ITEM}],
        "description": "A string (one user message) or input items"})
    instructions = _nullable(fields.String, metadata={
        "description": "A system message first; not carried over from earlier responses"})
    previous_response_id = _nullable(fields.String, metadata={
        "description": "A response stored by this gateway for this key (or its team): its "
                       "conversation goes first; else 400 `previous_response_not_found`"})
    store = _nullable(fields.Boolean, metadata={
        "description": "Keep the response in the gateway (default true; see the README)"})
    stream = _nullable(fields.Boolean)
    tools = _nullable(fields.List, cls_or_instance=fields.Nested(FunctionToolSchema))
    tool_choice = fields.Raw(allow_none=True, metadata=TOOL_CHOICE)
    parallel_tool_calls = _nullable(fields.Boolean)
    text = _nullable(fields.Nested, nested=TextSchema)
    reasoning = _nullable(fields.Nested, nested=ReasoningSchema)
    max_output_tokens = _nullable(fields.Integer, validate=validate.Range(
        MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS))
    temperature = _nullable(fields.Float, validate=validate.Range(0, 2))
    top_p = _nullable(fields.Float, validate=validate.Range(0, 1))
    metadata = _nullable(fields.Dict, keys=fields.String(), values=fields.String(),
                         metadata={"maxProperties": 16})
    user = _nullable(fields.String)
    safety_identifier = _nullable(fields.String)
    prompt_cache_key = _nullable(fields.String)
    prompt_cache_retention = _nullable(fields.String)
    service_tier = _nullable(fields.String)
    include = fields.Raw(metadata={"description": "Accepted, not sent to chat upstreams"})
    stream_options = fields.Raw(metadata={"description": "Accepted"})
    max_tool_calls = fields.Raw(metadata={"description": "Accepted (it limits hosted tools)"})
    background = fields.Boolean(allow_none=True, metadata={
        "enum": [False, None], "description": "Background responses are not supported"})
    truncation = fields.String(allow_none=True, metadata={"enum": ["disabled", None]})
    neuroroute = fields.Nested(RouteOptionsSchema, metadata={
        "description": "Gateway options (not sent upstream)"})


class ResponseUsageSchema(_Open):
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    input_tokens_details = fields.Dict()
    output_tokens_details = fields.Dict()


class ResponseErrorSchema(_Open):
    code = fields.String(required=True, allow_none=True)
    message = fields.String(required=True)


class ResponseObjectSchema(_Open):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["response"]})
    created_at = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": [
        "completed", "incomplete", "failed", "in_progress", "queued", "cancelled"]})
    model = fields.String(required=True)
    output = fields.List(fields.Dict(), required=True)
    error = fields.Nested(ResponseErrorSchema, allow_none=True)
    incomplete_details = fields.Dict(allow_none=True)
    previous_response_id = fields.String(allow_none=True)
    store = fields.Boolean()
    usage = fields.Nested(ResponseUsageSchema, allow_none=True)
    metadata = fields.Dict(allow_none=True)


class ResponseEventSchema(_Open):
    """One server-sent event of a stream: ``event`` is its type, ``data`` the event as JSON
    (with the same ``type``)."""

    event = fields.String(required=True, metadata={
        "description": "The event's type, e.g. " + ", ".join(f"`{e}`" for e in EVENTS)})
    data = fields.String(required=True, metadata={
        "contentMediaType": "application/json",
        "contentSchema": {"type": "object", "required": ["type"],
                          "properties": {"type": {"type": "string"}}}})


class InputItemsQuerySchema(_Closed):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))
    after = fields.String(metadata={"description": "An item id: the items after it"})


class InputItemListSchema(_Open):
    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Dict(), required=True, metadata={
        "description": "The items the request sent (its own input, with ids)"})
    first_id = fields.String(required=True, allow_none=True)
    last_id = fields.String(required=True, allow_none=True)
    has_more = fields.Boolean(required=True)


class DeletedResponseSchema(Schema):
    id = fields.String(required=True)
    object = fields.String(required=True, metadata={"enum": ["response"]})
    deleted = fields.Boolean(required=True, metadata={"enum": [True]})
