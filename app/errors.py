"""The gateway's error hierarchy: every error a client can see, with OpenAI's fields.

Each is rendered as OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}`` in
one place, ``app.api.errors`` (HTTP answers), or as a stream's final SSE event
(``app.streaming``). This module knows nothing about HTTP frameworks.
"""

from __future__ import annotations

from typing import Any


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
