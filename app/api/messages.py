"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API.

The same pipeline as chat completions (keys, allowlists, limits, budgets, cache, routing,
usage): parse, call the chat service as the Messages surface, serialize. Keys come as
``x-api-key`` (the ``anthropic`` SDK's ``api_key``) or ``Authorization: Bearer``;
``anthropic-version`` is accepted and not needed. Errors are Anthropic's
``{"type": "error", "error": {...}}`` (see :mod:`app.api.errors`).
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from app.api.bodies import read_json_object
from app.api.chat import serve
from app.api.docs import MESSAGES_EXAMPLE
from app.api.spec import Blueprint, documented
from app.chat.surfaces import MESSAGES_SURFACE
from app.schemas.messages import (
    AnthropicErrorSchema,
    AnthropicEventSchema,
    AnthropicMessageSchema,
    CountTokensRequestSchema,
    CountTokensSchema,
    MessagesRequestSchema,
)
from app.surfaces.messages_request import count_tokens

bp = Blueprint("messages", __name__, errors=(414, 431), secured=True, body_errors=False,
               description="Anthropic's Messages API, for the anthropic SDK and the tools "
                           "built on it: served by every chat model (relayed as is to "
                           "Anthropic deployments, translated for the others).")

ERRORS = {
    400: "Invalid request (`invalid_request_error`; the message names the field)",
    401: "Missing, unknown, revoked or expired key (`authentication_error`)",
    402: "The key's budget is spent (`billing_error`)",
    404: "Unknown model, or one the key may not use (`not_found_error`)",
    413: "Request body too large (`request_too_large`)",
    415: "Body not sent as application/json (`invalid_request_error`)",
    429: "A rate limit (`rate_limit_error`, with Retry-After)",
    500: "Internal error (`api_error`)",
    502: "The upstream failed (`api_error`)",
    504: "The upstream timed out (`timeout_error`)",
    529: "No deployment available, the upstream overloaded, or the key store unreachable "
         "(`overloaded_error`; Anthropic's status for a 503)",
}


def _errors(statuses: dict[int, str]) -> list[Any]:
    return [bp.alt_response(status, schema=AnthropicErrorSchema, description=text)
            for status, text in statuses.items()]


@bp.post("/v1/messages")
@documented(
    bp.doc(summary="Create a message (Anthropic Messages API)",
           description="With `stream: true` the answer is Anthropic's event stream: "
                       "`message_start`, `content_block_start/delta/stop`, `message_delta` "
                       "(stop reason and usage), `message_stop`; an error after it began is "
                       "an `error` event."),
    bp.arguments(MessagesRequestSchema, examples={"hello": MESSAGES_EXAMPLE}),
    bp.response(200, AnthropicMessageSchema, description="The message, or its event stream"),
    bp.alt_response(200, schema=AnthropicEventSchema, content_type="text/event-stream",
                    description="The message's events (server-sent events)", success=True),
    *_errors(ERRORS),
)
def create_message() -> Response:
    return serve(MESSAGES_SURFACE)


@bp.post("/v1/messages/count_tokens")
@documented(
    bp.doc(summary="Count a message's input tokens (the gateway's estimate)",
           description="The estimate the gateway's rate limits and budgets use for this "
                       "request, not the upstream tokenizer's count."),
    bp.arguments(CountTokensRequestSchema),
    bp.response(200, CountTokensSchema, description="The estimated input tokens"),
    *_errors({status: text for status, text in ERRORS.items()
              if status in (400, 401, 413, 415, 429, 500, 529)}),
)
def count_message_tokens() -> Response:
    return Response(orjson.dumps(count_tokens(read_json_object())), mimetype="application/json")
