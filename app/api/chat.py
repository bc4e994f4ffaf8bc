"""``POST /v1/chat/completions``: parse, validate, dispatch, relay."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, g, request

from app.errors import InvalidRequestError, ModelNotFoundError, UnsupportedMediaTypeError
from app.extensions import gateway
from app.providers.base import ChatRequest
from app.routing.dispatch import FALLBACKS_HEADER, route_options
from app.schemas.chat import ChatCompletionRequestSchema, first_error
from app.streaming import SSE_HEADERS, SSE_MIMETYPE

bp = Blueprint("chat", __name__)
_schema = ChatCompletionRequestSchema()


def parse_json_object() -> dict[str, Any]:
    """The request body as a JSON object.

    Raises UnsupportedMediaTypeError (415) unless the body is sent as JSON,
    PayloadTooLarge (413, from werkzeug) above the configured limit, and
    InvalidRequestError (400) for a body that is not a JSON object.
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json.")
    raw = request.get_data(cache=False)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request: {exc}.",
                                  code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return body


def validate_chat_body(body: dict[str, Any]) -> None:
    """Raises InvalidRequestError (400) naming the first invalid field as ``param``."""
    errors = _schema.validate(body)
    if errors:
        param, message = first_error(errors)
        if message == "Missing data for required field.":
            raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                      code="missing_required_parameter")
        raise InvalidRequestError(f"Invalid value for '{param}': {message}", param=param,
                                  code="invalid_value")


@bp.post("/v1/chat/completions")
def create_chat_completion() -> Response:
    body = parse_json_object()
    validate_chat_body(body)
    model = body["model"]
    if not g.principal.may_use(model):
        raise ModelNotFoundError(model)
    body, options = route_options(body, request.headers.get(FALLBACKS_HEADER))
    outcome = gateway().dispatcher.chat(ChatRequest(body=body, model=model,
                                                    request_id=g.request_id), options)
    headers = {"x-neuroroute-deployment": outcome.deployment.id,
               "x-neuroroute-attempts": str(outcome.attempts),
               "x-neuroroute-route": outcome.route}
    if outcome.stream is not None:
        return Response(outcome.stream, status=200, mimetype=SSE_MIMETYPE,
                        headers={**SSE_HEADERS, **headers})
    assert outcome.result is not None
    return Response(outcome.result.body, status=outcome.result.status,
                    mimetype="application/json", headers=headers)
