"""Rate limits with flask-limiter: per-key RPM and TPM, per-IP limit on failed authentication.

- Storage is ``memory://`` by default and Redis when ``NEUROROUTE_REDIS_URL`` is set, so a
  limit holds across workers and instances. The counters are atomic in Redis (INCRBY on a
  fixed window, a Lua script on a moving window), which is what makes them exact.
- When Redis is unreachable flask-limiter marks its storage dead and evaluates the *same*
  limits in memory (``in_memory_fallback_enabled`` with no static fallback list), probing
  Redis again with exponential backoff and switching back when it answers.
- Per key: ``rpm_limit`` / ``tpm_limit`` from the key record, else the defaults from settings.
  TPM cost is the estimated prompt tokens plus the requested max tokens; once the upstream
  reports the real usage, any excess over the estimate is charged too (the library cannot
  refund, so an over-estimate is not returned).
- Per IP: only requests with an unknown or missing key are counted (key guessing); requests
  with a valid key are exempt, so valid traffic pays no storage round trip for it, and a
  revoked or expired key gets its 401 with the reason, never a lock-out.
- OpenAI's ``x-ratelimit-*`` headers (requests and tokens) on every chat response; 429s are
  OpenAI-shaped with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded

from app.errors import RateLimitError
from app.providers.base import Usage
from app.settings import Settings
from app.tokens import estimate_message_tokens

log = logging.getLogger(__name__)

CHAT_ENDPOINT = "chat.create_chat_completion"
UNLIMITED = 1_000_000_000
# A dead Redis must cost milliseconds, not seconds, before the in-memory fallback takes over.
# (floats: flask-limiter's annotation says str | int, but redis-py needs numbers)
REDIS_TIMEOUTS: dict[str, float] = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


# Failures that look like key guessing; a revoked/expired/disabled key is a real key its
# holder knows (they get 401 with the reason, not a lock-out).
GUESSING_CODES = frozenset({"invalid_api_key", "missing_api_key"})


def _is_guess() -> bool:
    err = g.get("auth_error")
    return err is not None and err.code in GUESSING_CODES


def _principal_key() -> str:
    return f"key:{g.principal.key_id}"


def client_address() -> str:
    return request.remote_addr or "unknown"


def requested_tokens(body: dict[str, Any]) -> int:
    """TPM cost charged before the request: estimated prompt plus requested completion."""
    completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    if not isinstance(completion, int) or isinstance(completion, bool):
        completion = 0
    return estimate_message_tokens(body.get("messages")) + completion


def _tpm_cost() -> int:
    # The view parses the body after this runs; parse_json_object caches it on g.
    from app.api.chat import parse_json_object

    try:
        body = parse_json_object()
    except Exception:  # noqa: BLE001 - the view reports the body error itself; cost 1 here
        return 1
    g.tpm_cost = max(1, requested_tokens(body))
    return int(g.tpm_cost)


class RateLimits:
    """The limiter of one app, its limit definitions and its response headers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        storage_uri = settings.redis_url or "memory://"
        self.limiter = Limiter(
            key_func=client_address,
            storage_uri=storage_uri,
            storage_options=REDIS_TIMEOUTS if settings.redis_url else {},  # type: ignore[arg-type]
            strategy=settings.ratelimit_strategy,
            in_memory_fallback_enabled=True,
            swallow_errors=True,  # a broken limiter must never fail a request
            headers_enabled=False,  # OpenAI's header names are set below instead
            key_prefix=settings.redis_namespace,
            application_limits=[settings.auth_failure_limit],
            application_limits_exempt_when=lambda: not _is_guess(),
            application_limits_deduct_when=lambda response: response.status_code == 401,
        )
        def rpm() -> int | None:
            limit: int | None = g.principal.rpm_limit
            return limit if limit is not None else settings.default_rpm

        def tpm() -> int | None:
            limit: int | None = g.principal.tpm_limit
            return limit if limit is not None else settings.default_tpm

        # flask-limiter parses the limit string before it looks at exempt_when, so a key
        # without a limit still needs a parseable one; it is never counted (exempt).
        def per_minute(limit: int | None) -> str:
            return f"{limit if limit is not None else UNLIMITED}/minute"

        @self.limiter.request_filter
        def _nothing_to_limit() -> bool:
            # Skip every limit evaluation (about 13% of a request's CPU in the S1 profile)
            # when none can apply: no key guessing to count and no RPM/TPM for this caller.
            if _is_guess():
                return False
            if g.get("principal") is None:
                return True
            return rpm() is None and tpm() is None

        self.rpm_limit = self.limiter.limit(lambda: per_minute(rpm()), key_func=_principal_key,
                                            exempt_when=lambda: rpm() is None, scope="requests")
        self.tpm_limit = self.limiter.limit(lambda: per_minute(tpm()), key_func=_principal_key,
                                            exempt_when=lambda: tpm() is None,
                                            cost=_tpm_cost, scope="tokens")

    @property
    def storage_healthy(self) -> bool:
        """False while the limiter runs on its in-memory fallback."""
        return not getattr(self.limiter, "_storage_dead", False)

    def current(self) -> tuple[RequestLimit | None, RequestLimit | None]:
        """This request's (requests, tokens) limits, if they applied."""
        rpm = tpm = None
        for limit in self.limiter.current_limits:
            scope = limit.request_args[-1] if limit.request_args else ""
            if scope.endswith("requests"):
                rpm = limit
            elif scope.endswith("tokens"):
                tpm = limit
        return rpm, tpm

    def add_headers(self, response: Response) -> None:
        """OpenAI's x-ratelimit-* headers for the limits this request was checked against,
        and ``Retry-After`` on every 429 this limiter caused."""
        now = time.time()
        if response.status_code == 429:
            for breached in self.limiter.current_limits:
                if breached.breached:
                    try:
                        reset_at = breached.window[0]
                    except Exception:  # noqa: BLE001 - storage failed: a conservative wait
                        reset_at = now + 60
                    response.headers["Retry-After"] = str(max(1, math.ceil(reset_at - now)))
        if request.endpoint != CHAT_ENDPOINT:
            return
        for limit, kind in zip(self.current(), ("requests", "tokens"), strict=True):
            if limit is None:
                continue
            try:
                reset_at, remaining = limit.window
            except Exception:  # noqa: BLE001 - storage failed between check and headers
                continue
            response.headers[f"x-ratelimit-limit-{kind}"] = str(limit.limit.amount)
            response.headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining))
            response.headers[f"x-ratelimit-reset-{kind}"] = f"{max(0.0, reset_at - now):.3f}s"

    def charge_actual_tokens(self, usage: Usage | None, request_args: Any) -> None:
        """After the response: charge tokens the estimate missed (never refunds)."""
        limit, args, estimated = request_args
        if usage is None or limit is None:
            return
        extra = usage.total_tokens - estimated
        if extra > 0:
            try:
                self.limiter.limiter.hit(limit.limit, *args, cost=extra)
            except Exception:  # noqa: BLE001 - accounting must not break the response
                log.warning("could not charge %d extra tokens to the TPM limit", extra)

    def tpm_context(self) -> tuple[RequestLimit | None, list[str], int]:
        """What charge_actual_tokens needs later (captured while the request is current)."""
        _, tpm = self.current()
        return tpm, list(tpm.request_args) if tpm else [], int(g.get("tpm_cost", 0))


def rate_limit_error(exc: RateLimitExceeded) -> RateLimitError:
    scope = "tokens" if "tokens" in str(getattr(exc.limit, "scope", "")) else "requests"
    if g.get("auth_error") is not None:
        return RateLimitError("Too many failed authentication attempts from this address; "
                              "retry later.", code="rate_limit_exceeded")
    return RateLimitError(f"Rate limit reached for {scope} per minute on this API key "
                          f"({exc.description}). Retry after the reset time in the "
                          f"x-ratelimit-reset-{scope} header.", code="rate_limit_exceeded")


def init_rate_limits(app: Flask, settings: Settings) -> RateLimits:
    """Attach the limiter. Must run after the auth hook records ``g.principal``/``g.auth_error``
    and before the hook that raises the auth error, so failed attempts are counted."""
    limits = RateLimits(settings)
    limits.limiter.init_app(app)
    # Fallback is a warning; the switch back to Redis is INFO, which ops want to see too.
    logging.getLogger("flask-limiter").setLevel(logging.INFO)
    view = app.view_functions[CHAT_ENDPOINT]
    app.view_functions[CHAT_ENDPOINT] = limits.tpm_limit(limits.rpm_limit(view))  # type: ignore[assignment]

    @app.after_request
    def _headers(response: Response) -> Response:
        limits.add_headers(response)
        return response

    return limits
