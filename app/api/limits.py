"""The per-address limit on failed authentication (flask-limiter): against key guessing.

Only requests with an unknown or missing key are counted (and refused with 429 once the
address is over ``NEUROROUTE_AUTH_FAILURE_LIMIT``); a request with a valid key is never
counted or refused here, and a revoked, disabled or expired key is a real key its holder
knows: it always gets its 401 with the reason. Storage is Redis when configured (shared by
every worker and instance), with flask-limiter's in-memory fallback while Redis is down.

The per-key RPM/TPM limits are not here: they are part of the chat pipeline's admission,
one Redis script call per request (``app.admission``), because flask-limiter checks and
charges each limit in its own round trips and reads them back for the headers (8 Redis
commands per chat request, measured, against 2 now).
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from app.errors import RateLimitError
from app.settings import Settings

EXTENSION_KEY = "neuroroute.auth_failure_limit"
# Failures that look like key guessing.
GUESSING_CODES = frozenset({"invalid_api_key", "missing_api_key"})
REDIS_TIMEOUTS: dict[str, float] = {"socket_timeout": 0.25, "socket_connect_timeout": 0.25}


def auth_failure_limit() -> AuthFailureLimit:
    """The current app's limiter (for readiness)."""
    limit: AuthFailureLimit = current_app.extensions[EXTENSION_KEY]
    return limit


def _is_guess() -> bool:
    err = g.get("auth_error")
    return err is not None and err.code in GUESSING_CODES


def client_address() -> str:
    return request.remote_addr or "unknown"


class AuthFailureLimit:
    def __init__(self, app: Flask, settings: Settings) -> None:
        self.limiter = Limiter(
            key_func=client_address,
            storage_uri=settings.redis_url or "memory://",
            storage_options=REDIS_TIMEOUTS if settings.redis_url else {},  # type: ignore[arg-type]
            strategy=settings.ratelimit_strategy,
            in_memory_fallback_enabled=True,
            swallow_errors=True,  # a broken limiter must never fail a request
            headers_enabled=False,
            key_prefix=f"{settings.redis_namespace}:authfail",
            application_limits=[settings.auth_failure_limit],
            application_limits_deduct_when=lambda response: response.status_code == 401,
        )
        self.limiter.init_app(app)
        self._only_for_guesses(app)
        app.extensions[EXTENSION_KEY] = self
        # Fallback is a warning; the switch back to Redis is INFO, which ops want to see too.
        logging.getLogger("flask-limiter").setLevel(logging.INFO)

    def _only_for_guesses(self, app: Flask) -> None:
        """Run flask-limiter's request hooks for guesses only, in their places.

        Even with nothing to limit, its three hooks cost about 5% of a relayed request's CPU
        (S1 profile: limit resolution and its per-request context); a request with a valid key
        has nothing to do with this limit, so it skips them.
        """
        limiter = self.limiter

        def owned(hook: Any) -> bool:
            return getattr(hook, "__self__", None) is limiter or (
                isinstance(hook, partial) and hook.args[:1] == (limiter,))

        def gate(hook: Any, kind: str) -> Any:
            if kind == "before":
                def before() -> None:
                    if _is_guess():
                        g.auth_limit_checked = True
                        hook()
                return before
            if kind == "after":
                def after(response: Response) -> Response:
                    return hook(response) if g.get("auth_limit_checked") else response
                return after

            def teardown(exc: BaseException | None) -> None:
                if g.get("auth_limit_checked"):
                    hook(exc)
            return teardown

        for kind, registry in (("before", app.before_request_funcs),
                               ("after", app.after_request_funcs),
                               ("teardown", app.teardown_request_funcs)):
            hooks: list[Any] = registry.setdefault(None, [])
            hooks[:] = [gate(hook, kind) if owned(hook) else hook for hook in hooks]

    @property
    def storage_healthy(self) -> bool:
        """False while the limiter runs on its in-memory fallback."""
        return not getattr(self.limiter, "_storage_dead", False)

    def error(self, exc: RateLimitExceeded) -> RateLimitError:  # noqa: ARG002 - handler API
        """The 429 for an address over the limit, with ``Retry-After``."""
        now = time.time()
        reset_at = now + 60  # storage failed: a conservative wait
        for breached in self.limiter.current_limits:
            if breached.breached:
                try:
                    reset_at = breached.window[0]
                except Exception:  # noqa: BLE001, S112
                    continue
        return RateLimitError("Too many failed authentication attempts from this address; "
                              "retry later.", code="rate_limit_exceeded",
                              headers={"Retry-After": str(max(1, math.ceil(reset_at - now)))})
