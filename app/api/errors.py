"""The one place where exceptions become HTTP responses: OpenAI's error envelope (Anthropic's
on ``/v1/messages``).

``GatewayError``\\ s render as they are; werkzeug's HTTP exceptions (404 route, 405, 413, ...)
and flask-limiter's 429 are mapped to the same envelope; anything unexpected is logged with
its traceback and answered 500 without internals. No HTML page or stack trace leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from flask import Flask, Response, g, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from app.errors import (
    AuthenticationError,
    GatewayError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnsupportedMediaTypeError,
)
from app.surfaces.messages import anthropic_error

log = logging.getLogger(__name__)
MESSAGES_PREFIX = "/v1/messages"  # Anthropic's API: errors in its shape

_HTTP_EXCEPTION_MAP: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitError,
}


def error_response(err: GatewayError) -> Response:
    """Render a GatewayError as OpenAI's error envelope (its code goes to the access line),
    or as Anthropic's on the Messages API (``/v1/messages``), with the status its SDK maps to
    the matching exception class."""
    g.error_code = err.code
    if request.path.startswith(MESSAGES_PREFIX):
        status, body = anthropic_error(err)
        resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    else:
        resp = Response(orjson.dumps(err.to_dict()), status=err.status,
                        mimetype="application/json")
    for name, value in err.headers.items():
        resp.headers[name] = value
    return resp


def from_http_exception(exc: HTTPException) -> GatewayError:
    """Map a werkzeug HTTPException (raised by routing or body limits) to a GatewayError."""
    status = exc.code or 500
    if status == 404:
        return NotFoundError("Unknown request URL. Please check the URL and method.",
                             code="unknown_url")
    if status == 405:
        return MethodNotAllowedError("Method not allowed for this URL.")
    if status == 413:
        return PayloadTooLargeError("Request body too large.")
    cls = _HTTP_EXCEPTION_MAP.get(status)
    if cls is None:
        return GatewayError(exc.description or "HTTP error", status=status,
                            code=f"http_{status}")
    return cls(exc.description or "HTTP error")


def register_error_handlers(app: Flask, *,
                            rate_limited: Callable[[RateLimitExceeded], GatewayError]) -> None:
    """Install the renderers; ``rate_limited`` maps flask-limiter's 429 to our error."""

    @app.errorhandler(GatewayError)
    def _gateway_error(err: GatewayError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if isinstance(exc, RateLimitExceeded):
            return error_response(rate_limited(exc))
        resp = error_response(from_http_exception(exc))
        if exc.code == 405:
            valid = getattr(exc, "valid_methods", None)
            if valid:
                resp.headers["Allow"] = ", ".join(valid)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Logged with the traceback for operators; the client sees no internals.
        log.exception("unhandled error")
        return error_response(InternalError("The server had an error while processing "
                                            "your request."))
