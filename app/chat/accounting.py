"""The account stage: once per chat request, when its response is closed.

- the usage record (tokens, cost, latency, TTFT, outcome) goes to the batched writer;
- the quota is settled: tokens the estimate missed are charged, the budget reservation
  becomes the real cost, a fresh answer is stored in the cache (one Redis command at most);
- the metrics of the request are recorded (batched, see ``app.metrics``).

It runs after the last byte was written (or the client left), so it never delays an answer.
A stream that failed after its first byte is accounted with its error's code and status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from app.admission.service import Admission
from app.chat.trace import ChatTrace
from app.metrics import (
    CACHE,
    COST,
    FALLBACKS,
    REFUSED,
    RETRIES,
    STREAM_ERRORS,
    TOKENS,
    TTFT_SECONDS,
    UPSTREAM_SECONDS,
    Labels,
    Recorder,
)
from app.pricing import Price, PriceTable
from app.providers.base import Usage
from app.settings import Deployment
from app.usage.reserve import ReservationEstimator
from app.usage.writer import UsageRecord, UsageWriter

log = logging.getLogger(__name__)

REFUSAL_CODES = {"rate_limit_exceeded": "rate_limit", "insufficient_quota": "budget"}


class Accounting:
    def __init__(self, *, admission: Admission, estimator: ReservationEstimator,
                 writer: UsageWriter | None, recorder: Recorder, labels: Labels,
                 deployment: Callable[[str], Deployment | None],
                 price: Callable[[str], Price | None]) -> None:
        self.admission = admission
        self.estimator = estimator
        self.writer = writer
        self.recorder = recorder
        self.labels = labels
        self.deployment = deployment  # id -> Deployment (the registry can change at runtime)
        self.price = price  # id -> the registry's price

    def cost(self, deployment_id: str | None, usage: Usage | None) -> tuple[float, bool]:
        """(USD, price known) of ``usage`` on the deployment, from the registry's price."""
        price = self.price(deployment_id) if deployment_id else None
        return PriceTable.cost(usage, price)

    def finish(self, trace: ChatTrace, *, status: int, error_code: str | None,
               duration: float) -> dict[str, Any]:
        """Account for the request (once); returns the chat fields of its access line."""
        if trace.finished:
            return {}
        trace.finished = True
        http_status = status
        if trace.stream_error is not None:  # failed after the first byte: not a success
            status, error_code = trace.stream_error.status, trace.stream_error.code
        usage = trace.usage
        if usage is None and trace.deployment is not None and trace.request is not None:
            # No usage from the upstream (or the client left): estimate, and say so.
            prompt = trace.request.prompt_tokens
            usage = Usage(prompt, trace.content_events, prompt + trace.content_events,
                          estimated=True)
        if trace.cache == "hit":
            cost, known = 0.0, True
        elif trace.cost is not None and usage is trace.usage:
            cost, known = trace.cost, trace.price_known  # computed for the cost header
        else:
            cost, known = self.cost(trace.deployment, usage)
        self._settle(trace, usage, cost)
        record = self._record(trace, usage, cost, known, status, error_code, duration)
        if self.writer is not None:
            self.writer.put(record)
        self._metrics(trace, usage, cost, status, error_code)
        fields: dict[str, Any] = {"model": trace.model, "deployment": trace.deployment,
                                  "stream": trace.stream, "api": trace.api,
                                  "cost_usd": cost}
        if status != http_status:
            fields["outcome_status"] = status  # the stream's error, after its 200 began
        if error_code is not None:
            fields["error_code"] = error_code
        for name, value in (("attempts", trace.attempts), ("cache", trace.cache)):
            if value is not None:
                fields[name] = value
        if trace.ttft_seconds is not None:
            fields["ttft_ms"] = round(trace.ttft_seconds * 1000, 2)
        if usage is not None:
            fields["prompt_tokens"] = usage.prompt_tokens
            fields["completion_tokens"] = usage.completion_tokens
        return fields

    def _settle(self, trace: ChatTrace, usage: Usage | None, cost: float) -> None:
        admitted = trace.admitted
        if admitted is None:
            return
        real = usage if usage is not None and not usage.estimated else None
        if real is not None and trace.request is not None and trace.model is not None:
            self.estimator.observe(trace.model, trace.request, real)
        try:
            self.admission.settle(admitted, used_tokens=real.total_tokens if real else None,
                                  cost=cost, cache_set=trace.cache_set)
        except Exception:  # noqa: BLE001 - accounting must never break the response path
            log.exception("quota settlement failed")

    def _record(self, trace: ChatTrace, usage: Usage | None, cost: float, known: bool,
                status: int, error_code: str | None, duration: float) -> UsageRecord:
        principal = trace.principal
        return UsageRecord(
            request_id=trace.request_id, created_at=time.time(), key_id=principal.key_id,
            user_id=principal.user_id, team_id=principal.team_id, model=trace.model,
            deployment=trace.deployment, provider=trace.provider,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            estimated=usage.estimated if usage else False,
            cost=cost, price_known=known, latency_ms=round(duration * 1000, 3),
            ttft_ms=None if trace.ttft_seconds is None else round(trace.ttft_seconds * 1000, 3),
            status=status, error_code=error_code, stream=trace.stream,
            cache_hit=trace.cache == "hit", cancelled=trace.cancelled, attempts=trace.attempts,
            route=trace.auto_route, api=trace.api)

    def _metrics(self, trace: ChatTrace, usage: Usage | None, cost: float, status: int,
                 error_code: str | None) -> None:
        rec, labels = self.recorder, self.labels
        model = labels.model(trace.model)
        if trace.upstream_seconds is not None:
            rec.observe(UPSTREAM_SECONDS, (labels.deployment(trace.deployment),),
                        trace.upstream_seconds)
        if trace.ttft_seconds is not None:
            rec.observe(TTFT_SECONDS, (model,), trace.ttft_seconds)
        if trace.cache is not None:
            rec.inc(CACHE, (trace.cache,))
        if status == 429 and error_code in REFUSAL_CODES:
            rec.inc(REFUSED, (REFUSAL_CODES[error_code],))
        if trace.attempts is not None and trace.attempts > 1:
            rec.inc(RETRIES, (model,), trace.attempts - 1)
        if trace.route and "fallback=" in trace.route:
            rec.inc(FALLBACKS, (model,))
        if trace.stream_error is not None:
            rec.inc(STREAM_ERRORS, (labels.deployment(trace.deployment),
                                    trace.stream_error.code or "error"))
        if usage is not None:  # by client API too (chat.completions, messages, responses...)
            rec.inc(TOKENS, (model, "prompt", trace.api), usage.prompt_tokens)
            rec.inc(TOKENS, (model, "completion", trace.api), usage.completion_tokens)
        if cost:
            rec.inc(COST, (model, trace.api), cost)
