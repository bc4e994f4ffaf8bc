"""The gateway's error hierarchy and the one place that renders errors as HTTP.

Every error a client can see is a :class:`GatewayError` rendered as OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}``. Werkzeug's HTTP exceptions (404 route,
405, 413, ...) and unexpected exceptions are mapped to the same envelope, so no HTML page or
stack trace ever leaves the process.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """An error with an HTTP status and OpenAI's error fields."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
        )


class ConflictError(GatewayError):
    """The request conflicts with the current state (a duplicate name, an entity in use)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class MethodNotAllowedError(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaTypeError(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"


class InsufficientQuotaError(GatewayError):
    """A budget is spent (OpenAI's own shape for an exhausted quota)."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class InternalError(GatewayError):
    status = 500
    type = "server_error"
    code = "internal_error"


class ServiceUnavailableError(GatewayError):
    """A dependency the request needs (e.g. the database) is down; retrying later may work."""

    status = 503
    type = "server_error"
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """The upstream failed in a way that is not its own OpenAI-shaped error (bad gateway)."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamHTTPError(UpstreamError):
    """The upstream answered with an error status; its OpenAI-shaped body is relayed as is."""

    def __init__(self, status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None):
        err = body.get("error")
        message = err.get("message") if isinstance(err, dict) else None
        super().__init__(str(message or f"upstream returned HTTP {status}"),
                         status=status, headers=headers)
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        return self.body


def error_body(err: GatewayError) -> bytes:
    return orjson.dumps(err.to_dict())


def error_response(err: GatewayError) -> Response:
    """Render a GatewayError as OpenAI's error envelope."""
    if has_request_context():
        g.error_code = err.code  # for the access log
    resp = Response(error_body(err), status=err.status, mimetype="application/json")
    for name, value in err.headers.items():
        resp.headers[name] = value
    return resp


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


def from_http_exception(exc: HTTPException) -> GatewayError:
    """Map a werkzeug HTTPException (raised by routing or body limits) to a GatewayError."""
    status = exc.code or 500
    cls = _HTTP_EXCEPTION_MAP.get(status)
    if status == 404:
        return NotFoundError("Unknown request URL. Please check the URL and method.",
                             code="unknown_url")
    if status == 405:
        return MethodNotAllowedError("Method not allowed for this URL.")
    if status == 413:
        return PayloadTooLargeError("Request body too large.")
    if cls is None:
        return GatewayError(exc.description or "HTTP error", status=status,
                            code=f"http_{status}")
    return cls(exc.description or "HTTP error")


def register_error_handlers(app: Flask) -> None:
    """The one place where exceptions become HTTP responses."""

    @app.errorhandler(GatewayError)
    def _gateway_error(err: GatewayError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        from flask_limiter.errors import RateLimitExceeded

        if isinstance(exc, RateLimitExceeded):
            from app.ratelimit import rate_limit_error

            return error_response(rate_limit_error(exc))
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
