"""Every response header the chat pipeline sets, built here and nowhere else.

- routing: ``x-neuroroute-deployment``, ``-attempts``, ``-route``;
- ``x-neuroroute-cache`` (hit | miss | skip), ``x-neuroroute-cost`` (non-stream answers),
  ``x-neuroroute-overhead-ms`` (the gateway's own time before the answer started);
- OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for each per-key limit
  that applies to the key (a key without limits gets none), on answers and on 429s alike;
- ``Retry-After`` on 429s (set by the error that refuses).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from app.admission.quota import LimitState
from app.chat.trace import ChatTrace
from app.streaming import SSE_HEADERS


def ratelimit_headers(limits: Iterable[LimitState]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the key's limits after this request."""
    out = {}
    for state in limits:
        out[f"x-ratelimit-limit-{state.name}"] = str(state.limit)
        out[f"x-ratelimit-remaining-{state.name}"] = str(state.remaining)
        out[f"x-ratelimit-reset-{state.name}"] = f"{state.reset_s:.3f}s"
    return out


def cost_header(cost: float, known: bool) -> str:
    return f"{cost:.8f}" if known else "unknown"


def answer_headers(trace: ChatTrace, *, stream: bool) -> dict[str, str]:
    """Headers of an answer (from the upstream or the cache), taken from the trace."""
    headers = dict(SSE_HEADERS) if stream else {}
    headers["x-neuroroute-cache"] = trace.cache or "skip"
    headers["x-neuroroute-deployment"] = trace.deployment or "cache"
    headers["x-neuroroute-attempts"] = str(trace.attempts or 0)
    if trace.route:
        headers["x-neuroroute-route"] = trace.route
    upstream = trace.upstream_seconds or 0.0
    headers["x-neuroroute-overhead-ms"] = \
        f"{(time.perf_counter() - trace.started - upstream) * 1000:.3f}"
    if not stream and trace.cost is not None:
        headers["x-neuroroute-cost"] = cost_header(trace.cost, trace.price_known)
    if trace.admitted is not None:
        headers.update(ratelimit_headers(trace.admitted.limits))
    return headers


def error_headers(limits: Iterable[LimitState]) -> dict[str, str]:
    """What an error answer adds to the error's own headers (Retry-After, attempts)."""
    return ratelimit_headers(limits)
