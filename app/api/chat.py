"""``POST /v1/chat/completions``: parse, validate, dispatch, relay."""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Response, g, request

from app.api.chat_doc import chat_completion_doc
from app.api.spec import SECURED, Blueprint
from app.cache import HIT, MISS, replay_as_stream
from app.errors import InvalidRequestError, ModelNotFoundError, UnsupportedMediaTypeError
from app.extensions import gateway
from app.observability import RequestRecord
from app.providers.base import ChatRequest, ChatResult
from app.routing.dispatch import FALLBACKS_HEADER, route_options
from app.schemas.chat import ChatCompletionRequestSchema, first_error
from app.streaming import SSE_HEADERS, SSE_MIMETYPE

bp = Blueprint("chat", __name__, errors=SECURED, secured=True,
               description="OpenAI-compatible chat completions.")
_schema = ChatCompletionRequestSchema()


def parse_json_object() -> dict[str, Any]:
    """The request body as a JSON object.

    Raises UnsupportedMediaTypeError (415) unless the body is sent as JSON,
    PayloadTooLarge (413, from werkzeug) above the configured limit, and
    InvalidRequestError (400) for a body that is not a JSON object.
    """
    cached: dict[str, Any] | None = g.get("chat_body")
    if cached is not None:  # already parsed for the token rate limit
        return cached
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
    g.chat_body = body
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
@chat_completion_doc(bp)
def create_chat_completion() -> Response:
    body = parse_json_object()
    validate_chat_body(body)
    model = body["model"]
    record = g.record
    record.model = model
    record.messages = body.get("messages")
    record.user_id = getattr(g.principal, "user_id", None)
    record.team_id = g.principal.team_id
    record.stream = body.get("stream") is True
    if not g.principal.may_use(model):
        raise ModelNotFoundError(model)
    gw = gateway()
    # Gateway-only options (fallbacks off...) leave the body before caching and dispatch.
    body, options = route_options(body, request.headers.get(FALLBACKS_HEADER))
    # 429 insufficient_quota when a budget of the key, its user or its team is spent.
    record.budget_reservation = gw.budgets.admit(g.principal, gw.usage.estimate(model, body))
    tpm = gw.rate_limits.tpm_context()
    record.on_finish.append(lambda rec: gw.rate_limits.charge_actual_tokens(rec.usage, tpm))
    lookup = gw.cache.lookup(body, key_id=g.principal.key_id, team_id=g.principal.team_id,
                             cache_control=request.headers.get("Cache-Control", ""))
    record.cache = lookup.status
    chat_request = ChatRequest(body=body, model=model, request_id=g.request_id)
    if lookup.status == HIT and lookup.result is not None:
        return _cached_response(record, chat_request, lookup.result,
                                lookup.deployment or "cache")

    dispatched = time.perf_counter()
    outcome = gw.dispatcher.chat(chat_request, options)
    record.upstream_seconds = time.perf_counter() - dispatched
    record.deployment = outcome.deployment.id
    record.attempts = outcome.attempts
    record.route_decision = outcome.route
    headers = {"x-neuroroute-deployment": outcome.deployment.id,
               "x-neuroroute-attempts": str(outcome.attempts),
               "x-neuroroute-route": outcome.route,
               "x-neuroroute-cache": lookup.status}
    # The gateway's own time so far: everything but waiting for the upstream.
    overhead = time.perf_counter() - record.started - record.upstream_seconds
    headers["x-neuroroute-overhead-ms"] = f"{overhead * 1000:.3f}"
    if outcome.stream is not None:
        return Response(gw.observer.instrument_stream(record, outcome.stream), status=200,
                        mimetype=SSE_MIMETYPE, headers={**SSE_HEADERS, **headers})
    assert outcome.result is not None
    record.usage = outcome.result.usage
    cost, known = gw.usage.cost(outcome.deployment.id, record.usage)
    record.cost = (cost, known)  # the usage record reuses it
    headers["x-neuroroute-cost"] = f"{cost:.8f}" if known else "unknown"
    if lookup.status == MISS:
        gw.cache.store(lookup, outcome.result, outcome.deployment.id)
    return Response(outcome.result.body, status=outcome.result.status,
                    mimetype="application/json", headers=headers)


def _cached_response(record: RequestRecord, chat_request: ChatRequest, result: ChatResult,
                     deployment: str) -> Response:
    """Answer from the cache: the stored bytes, or a stream replayed from them."""
    record.deployment = deployment
    record.attempts = 0
    headers = {"x-neuroroute-cache": HIT, "x-neuroroute-deployment": deployment,
               "x-neuroroute-attempts": "0", "x-neuroroute-cost": "0.00000000",
               "x-neuroroute-overhead-ms":
                   f"{(time.perf_counter() - record.started) * 1000:.3f}"}
    if record.stream:
        stream = replay_as_stream(result, include_usage=chat_request.include_usage)
        return Response(gateway().observer.instrument_stream(record, stream), status=200,
                        mimetype=SSE_MIMETYPE, headers={**SSE_HEADERS, **headers})
    record.usage = result.usage
    return Response(result.body, status=200, mimetype="application/json", headers=headers)
