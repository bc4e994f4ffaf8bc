"""``/v1/responses``: OpenAI's Responses API, and the responses the gateway stores.

``POST`` runs the chat pipeline as the Responses surface (keys, allowlists, limits, budgets,
cache, routing, usage; see :mod:`app.chat.responses`); ``GET``, ``GET .../input_items`` and
``DELETE`` read the gateway's own store, where a response is visible to the key that created
it, or to that key's team. Errors are OpenAI's envelope.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, g

from app.api.chat import serve
from app.api.chat_doc import REQUEST_HEADERS, TOO_MANY
from app.api.docs import RESPONSES_EXAMPLE
from app.api.headers import openapi_headers as headers
from app.api.spec import SECURED, Blueprint, documented
from app.gateway import gateway
from app.http_headers import CHAT_HEADERS, RATE_LIMIT_HEADERS, RETRY_AFTER, ROUTING_HEADERS
from app.schemas.common import ErrorSchema
from app.schemas.responses import (
    DeletedResponseSchema,
    InputItemListSchema,
    InputItemsQuerySchema,
    ResponseEventSchema,
    ResponseObjectSchema,
    ResponsesRequestSchema,
)

bp = Blueprint("responses", __name__, errors=SECURED, secured=True,
               description="OpenAI's Responses API, served by every chat model (relayed as "
                           "is to deployments with `responses_api: true`, translated to chat "
                           "completions for the others), and the responses the gateway "
                           "stores.")

DESCRIPTION = (
    "With `stream: true` the answer is the Responses API's typed event stream "
    "(`response.created`, `response.in_progress`, `response.output_item.added`, "
    "`response.output_text.delta`, ..., `response.completed`); an error after it began is "
    "an `error` event then `response.failed`. Hosted tools (`web_search`, `file_search`, "
    "`mcp`...), `background: true`, `conversation` and `prompt` are a 400 naming the field. "
    "With `store` (the default) the response is kept by the gateway and can be continued "
    "with `previous_response_id`, whichever deployment serves the next turn.")
OK = "The response (JSON), or with `stream: true` its events (server-sent events)"
NOT_STORED = "No stored response with this id for this key (or its team)"


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), mimetype="application/json")


@bp.post("/v1/responses")
@documented(
    bp.doc(summary="Create a response (OpenAI Responses API)", description=DESCRIPTION,
           parameters=REQUEST_HEADERS),
    bp.arguments(ResponsesRequestSchema, examples={"hello": RESPONSES_EXAMPLE}),
    bp.response(200, ResponseObjectSchema, description=OK,
                headers=headers({**ROUTING_HEADERS, **CHAT_HEADERS})),
    bp.alt_response(200, schema=ResponseEventSchema, content_type="text/event-stream",
                    description=OK, success=True),
    bp.errors(_404="Unknown model, or a model the key may not use",
              _502="The upstream failed or could not be reached",
              _503="No deployment available, the upstream's 503, or the key store or the "
                   "response store is down",
              _504="The upstream timed out"),
    bp.alt_response(429, schema=ErrorSchema, description=TOO_MANY,
                    headers=headers({RETRY_AFTER: ("Seconds to wait", "integer"),
                                     **RATE_LIMIT_HEADERS})),
)
def create_response() -> Response:
    return serve(gateway().responses.surface(g.principal))


@bp.get("/v1/responses/<response_id>")
@documented(
    bp.doc(summary="Get a stored response"),
    bp.response(200, ResponseObjectSchema, description="The response as it was answered"),
    bp.errors(_404=NOT_STORED, _503="The response store or the key store is down"),
)
def get_response(response_id: str) -> Response:
    return _json(gateway().responses.get(g.principal, response_id))


@bp.get("/v1/responses/<response_id>/input_items")
@bp.arguments(InputItemsQuerySchema, location="query")
@documented(
    bp.doc(summary="List a stored response's input items"),
    bp.response(200, InputItemListSchema, description="A page of the items its request sent"),
    bp.errors(_404=NOT_STORED, _503="The response store or the key store is down"),
)
def list_input_items(args: dict[str, Any], response_id: str) -> Response:
    return _json(gateway().responses.input_items(g.principal, response_id, **args))


@bp.route("/v1/responses/<response_id>", methods=["DELETE"])
@documented(
    bp.doc(summary="Delete a stored response"),
    bp.response(200, DeletedResponseSchema, description="OpenAI's deletion object"),
    bp.errors(_404=NOT_STORED, _503="The response store or the key store is down"),
)
def delete_response(response_id: str) -> Response:
    return _json(gateway().responses.delete(g.principal, response_id))
