"""Which upstream failures are worth another attempt, and how long to wait before it."""

from __future__ import annotations

import email.utils
import random
import time
from enum import Enum

from app.errors import GatewayError, UpstreamHTTPError
from app.settings import RetryPolicy

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504, 529})
CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})


class Failure(Enum):
    """How the router reacts to an attempt's error."""

    RETRY = "retry"  # transient upstream fault: retry, then fall back; counts for cooldown
    CONTEXT = "context"  # prompt too long for this deployment: a larger-context group may help
    FATAL = "fatal"  # the request itself is wrong (4xx): every deployment would say the same
    # This deployment cannot serve (the upstream rejects the gateway's credentials): others
    # and fallback groups may; retrying it would fail the same way. Counts for cooldown.
    DEPLOYMENT = "deployment"

# Codes of errors that are the deployment's fault, not the request's or a passing fault.
DEPLOYMENT_CODES = frozenset({"upstream_auth_error"})


def classify(err: GatewayError) -> Failure:
    """Connect errors (502), timeouts (504), 429 and 5xx are transient; most 4xx are not."""
    if err.status == 400 and error_code(err) in CONTEXT_CODES:
        return Failure.CONTEXT
    if err.code in DEPLOYMENT_CODES:
        return Failure.DEPLOYMENT
    # Every 5xx (connect errors are 502, timeouts 504) is the upstream's fault, not the request's.
    if err.status in RETRYABLE_STATUS or err.status >= 500 or err.status in (408, 409):
        return Failure.RETRY
    return Failure.FATAL


def error_code(err: GatewayError) -> str | None:
    """The upstream's ``error.code`` when it sent one, else the gateway's code."""
    if isinstance(err, UpstreamHTTPError):
        inner = err.body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return str(inner["code"])
    return err.code


def retry_after_s(err: GatewayError, *, now: float | None = None) -> float | None:
    """The upstream's ``Retry-After`` (seconds or an HTTP date) in seconds, if any."""
    raw = err.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_s(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter for the ``retry_number``-th retry (1-based).

    Full jitter (a uniform draw below the exponential cap) spreads the retries of many
    clients hitting the same failure instead of synchronising them into waves.
    """
    cap = min(policy.backoff_max_s, policy.backoff_initial_s * 2 ** (retry_number - 1))
    return rng.uniform(0, cap)


def retry_delay_s(policy: RetryPolicy, err: GatewayError, retry_number: int,
                  rng: random.Random) -> float:
    """Backoff, raised to the upstream's Retry-After (capped at ``retry_after_max_s``)."""
    delay = backoff_s(policy, retry_number, rng)
    hint = retry_after_s(err)
    if hint is not None:
        delay = max(delay, min(hint, policy.retry_after_max_s))
    return delay
