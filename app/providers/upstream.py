"""Plumbing every HTTP upstream shares: pooled sessions, bounded reads, error mapping.

Kept free of any provider class so that :mod:`app.providers.auth` (token requests) and the
providers themselves can both use it.
"""

from __future__ import annotations

from typing import Any

import orjson
import requests
from urllib3 import exceptions as urllib3_exceptions

from app.errors import GatewayError, UpstreamError, UpstreamHTTPError, UpstreamTimeoutError
from app.providers.transport import LeanAdapter
from app.settings import Deployment, Settings

USER_AGENT = "neuroroute/0.1"
MAX_ERROR_BODY = 256 * 1024  # bytes of an upstream error body we are willing to read


def build_session(settings: Settings) -> requests.Session:
    """A pooled session for one deployment, on the lean transport (``transport.LeanAdapter``).

    ``trust_env`` is off unless configured: with it on, ``requests`` looks up proxy settings
    and netrc in the environment on every call, which is measurable on the hot path.
    No retries in the adapter: retries are the router's decision, not urllib3's.
    """
    session = requests.Session()
    session.trust_env = settings.upstream_trust_env
    adapter = LeanAdapter(pool_maxsize=settings.upstream_pool_maxsize)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def read_bounded(resp: requests.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """At most about ``limit`` bytes of a streamed body: error pages can be arbitrarily big."""
    out = bytearray()
    for chunk in resp.iter_content(chunk_size=65536):
        out += chunk
        if len(out) >= limit:
            break
    return bytes(out)


def retry_after_headers(status: int, headers: Any) -> dict[str, str]:
    """``Retry-After`` to relay to the client with a 429/503 (it is the client's to honour)."""
    if headers is not None and status in (429, 503) and headers.get("Retry-After"):
        return {"Retry-After": headers["Retry-After"]}
    return {}


def upstream_auth_error(deployment: Deployment, message: str) -> GatewayError:
    """A 401/403 from the upstream: the *gateway's* credentials are wrong, not the client's."""
    return UpstreamError(f"The upstream rejected the gateway's credentials for deployment "
                         f"'{deployment.id}': {message}", code="upstream_auth_error")


def upstream_error_from_response(status: int, content: bytes, deployment: Deployment,
                                 headers: Any = None) -> GatewayError:
    """Map an upstream error answer to what the client sees.

    An OpenAI-shaped error body is relayed as is with the upstream's status. A 401/403 from
    the upstream means *the gateway's* credentials for that deployment are wrong, not the
    client's key, so it becomes a 502 instead of telling the client its own key is bad.
    """
    relay_headers = retry_after_headers(status, headers)
    try:
        body = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        body = None
    message = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and status not in (401, 403):
            return UpstreamHTTPError(status, body, headers=relay_headers)
        if isinstance(err, dict):
            message = err.get("message")
        elif isinstance(err, str):  # some local servers answer {"error": "text"}
            message = err
        elif isinstance(body.get("detail"), str):  # FastAPI-based servers
            message = body["detail"]
    if message is None:
        snippet = content[:200].decode("utf-8", "replace").strip()
        message = f"upstream returned HTTP {status}" + (f": {snippet}" if snippet else "")
    if status in (401, 403):
        return upstream_auth_error(deployment, str(message))
    err_type = "invalid_request_error" if status < 500 else "upstream_error"
    mapped = GatewayError(str(message), status=status, code=None, headers=relay_headers)
    mapped.type = err_type
    return mapped


def _is_read_timeout(exc: BaseException) -> bool:
    # requests turns urllib3's ReadTimeoutError raised while reading a body (the upstream
    # stalled after its headers) into a ConnectionError; its cause says what happened.
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, (urllib3_exceptions.ReadTimeoutError, TimeoutError))


def map_request_exception(exc: requests.RequestException, deployment: Deployment) -> GatewayError:
    """Connect errors become 502, timeouts 504 (also a stall while reading the body); the
    message names the deployment, not secrets."""
    if isinstance(exc, requests.Timeout) or _is_read_timeout(exc):
        kind = "connecting to" if isinstance(exc, requests.ConnectTimeout) else "waiting for"
        return UpstreamTimeoutError(f"Timed out {kind} the upstream of deployment "
                                    f"'{deployment.id}'.")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return UpstreamError(f"The upstream of deployment '{deployment.id}' broke off its "
                             f"answer (the connection closed mid-body).",
                             code="upstream_unavailable")
    if isinstance(exc, requests.ConnectionError):
        return UpstreamError(f"Could not connect to the upstream of deployment "
                             f"'{deployment.id}'.", code="upstream_unavailable")
    return UpstreamError(f"Upstream request failed for deployment '{deployment.id}': "
                         f"{type(exc).__name__}")


def invalid_response(deployment: Deployment, what: str) -> GatewayError:
    """The upstream answered 2xx with something that is not what its API promises."""
    return UpstreamError(f"The upstream of deployment '{deployment.id}' {what}.",
                         code="upstream_invalid_response")
