"""Per-request observation: one JSON access line and the Prometheus metrics.

A :class:`RequestRecord` is started before each request and finished exactly once when the
WSGI server closes the response, which for a stream is when its last byte was written (or
the client went away), so durations and token counts cover the whole stream.

Metrics use prometheus-client; under Gunicorn they are in multiprocess mode (the directory
is prepared by ``gunicorn.conf.py``), so ``/metrics`` on any worker reports all workers.
Label values are bounded: model and deployment labels only take configured names (anything
else is ``other``), never keys or request ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.providers.base import ChatStream, Usage

if TYPE_CHECKING:
    from app.usage.service import UsageService

access_log = logging.getLogger("app.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OTHER = "other"

REQUESTS = Counter("neuroroute_requests_total", "HTTP requests handled",
                   ["route", "model", "deployment", "status"])
REQUEST_SECONDS = Histogram("neuroroute_request_duration_seconds",
                            "Whole request duration, streams until their last byte",
                            ["route", "model"], buckets=LATENCY_BUCKETS)
UPSTREAM_SECONDS = Histogram("neuroroute_upstream_duration_seconds",
                             "Time until the upstream answered (first event for streams)",
                             ["deployment"], buckets=LATENCY_BUCKETS)
TTFT_SECONDS = Histogram("neuroroute_time_to_first_token_seconds",
                         "Time from request start to the first streamed byte sent",
                         ["model"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("neuroroute_tokens_total", "Tokens reported by upstreams",
                 ["model", "direction"])
COST = Counter("neuroroute_cost_usd_total", "Upstream cost of served requests in USD",
               ["model"])
CACHE = Counter("neuroroute_cache_requests_total", "Chat requests by response-cache result",
                ["result"])
REFUSED = Counter("neuroroute_refused_total",
                  "Requests refused by a rate limit or a budget (429)", ["reason"])
RETRIES = Counter("neuroroute_upstream_retries_total",
                  "Upstream attempts beyond the first (retries and fallbacks)", ["model"])
FALLBACKS = Counter("neuroroute_fallbacks_total", "Requests served by a fallback group",
                    ["model"])
DEPLOYMENT_OPEN = Gauge("neuroroute_deployment_cooldown",
                        "1 while a deployment's circuit breaker is not closed",
                        ["deployment"], multiprocess_mode="max")
DEPENDENCY_UP = Gauge("neuroroute_dependency_up",
                      "1 when a dependency answered at the last scrape (database, redis)",
                      ["dependency"], multiprocess_mode="min")
IN_FLIGHT = Gauge("neuroroute_in_flight_requests", "Requests being handled",
                  multiprocess_mode="livesum")
IN_FLIGHT_STREAMS = Gauge("neuroroute_in_flight_streams", "Streams being relayed",
                          multiprocess_mode="livesum")


@dataclass(slots=True)
class RequestRecord:
    """What one request did; filled in by the handlers, emitted once at the end."""

    request_id: str
    method: str
    path: str
    route: str = "unmatched"
    client_ip: str | None = None
    started: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    model: str | None = None
    messages: Any = None  # the request's messages, to estimate tokens when none are reported
    deployment: str | None = None
    attempts: int | None = None
    stream: bool = False
    upstream_seconds: float | None = None
    ttft_seconds: float | None = None
    usage: Usage | None = None
    cost: tuple[float, bool] | None = None  # (USD, price known) of ``usage``, once computed
    status: int = 0
    error_code: str | None = None
    cache: str | None = None  # hit | miss | skip for chat completions
    route_decision: str | None = None  # the auto router's choice and reason
    content_events: int = 0  # streamed events with content (a token estimate when needed)
    cancelled: bool = False  # the client went away before the stream was complete
    budget_reservation: Any = None  # app.usage.budgets.Reservation, settled at the end
    finished: bool = False
    on_finish: list[Callable[[RequestRecord], None]] = field(default_factory=list)


class Observer:
    """Turns finished RequestRecords into metrics and access log lines."""

    def __init__(self, *, known_models: set[str], known_deployments: set[str],
                 access_log_enabled: bool = True) -> None:
        self.known_models = known_models
        self.known_deployments = known_deployments
        self.access_log_enabled = access_log_enabled
        self.usage: UsageService | None = None  # set when the app wires usage accounting

    def label_model(self, model: str | None) -> str:
        if model is None:
            return "none"
        return model if model in self.known_models else OTHER

    def label_deployment(self, deployment: str | None) -> str:
        if deployment is None:
            return "none"
        return deployment if deployment in self.known_deployments else OTHER

    def start(self) -> None:
        IN_FLIGHT.inc()

    def instrument_stream(self, record: RequestRecord, stream: ChatStream) -> Iterator[bytes]:
        """Wrap a stream to time its first byte and read its usage when it ends."""
        IN_FLIGHT_STREAMS.inc()
        first = True
        try:
            for block in stream:
                if first:
                    record.ttft_seconds = time.perf_counter() - record.started
                    first = False
                record.content_events += block.count(b'"content":')
                yield block
        except GeneratorExit:
            record.cancelled = not stream.completed
            raise
        finally:
            IN_FLIGHT_STREAMS.dec()
            record.usage = stream.usage
            stream.close()

    def finish(self, record: RequestRecord) -> None:
        if record.finished:
            return
        record.finished = True
        IN_FLIGHT.dec()
        duration = time.perf_counter() - record.started
        model = self.label_model(record.model)
        deployment = self.label_deployment(record.deployment)
        REQUESTS.labels(record.route, model, deployment, str(record.status)).inc()
        REQUEST_SECONDS.labels(record.route, model).observe(duration)
        if record.upstream_seconds is not None:
            UPSTREAM_SECONDS.labels(deployment).observe(record.upstream_seconds)
        if record.ttft_seconds is not None:
            TTFT_SECONDS.labels(model).observe(record.ttft_seconds)
        if record.cache is not None:
            CACHE.labels(record.cache).inc()
        if record.status == 429 and record.error_code in ("rate_limit_exceeded",
                                                          "insufficient_quota"):
            REFUSED.labels("budget" if record.error_code == "insufficient_quota"
                           else "rate_limit").inc()
        if record.attempts is not None and record.attempts > 1:
            RETRIES.labels(model).inc(record.attempts - 1)
        if record.route_decision and "fallback=" in record.route_decision:
            FALLBACKS.labels(model).inc()
        if record.usage is not None:
            TOKENS.labels(model, "prompt").inc(record.usage.prompt_tokens)
            TOKENS.labels(model, "completion").inc(record.usage.completion_tokens)
        for callback in record.on_finish:
            try:
                callback(record)
            except Exception:  # a failing accounting hook must not lose the access line
                access_log.exception("finish hook failed")
        cost = None
        if self.usage is not None:
            try:
                usage_record = self.usage.finished(record, duration)
            except Exception:  # accounting must never break the response path
                access_log.exception("usage accounting failed")
                usage_record = None
            if usage_record is not None:
                cost = usage_record.cost
                COST.labels(model).inc(cost)
        if self.access_log_enabled:
            fields = access_fields(record, duration)
            if cost is not None:
                fields["cost_usd"] = cost
            access_log.info("request", extra=fields)


def access_fields(record: RequestRecord, duration: float) -> dict[str, Any]:
    """The fields of the access line: ids and numbers, never the key or the prompt."""
    fields: dict[str, Any] = {
        "request_id": record.request_id, "client_ip": record.client_ip,
        "method": record.method, "path": record.path,
        "status": record.status, "latency_ms": round(duration * 1000, 2),
        "key_id": record.key_id, "model": record.model, "deployment": record.deployment,
        "stream": record.stream,
    }
    if record.attempts is not None:
        fields["attempts"] = record.attempts
    if record.ttft_seconds is not None:
        fields["ttft_ms"] = round(record.ttft_seconds * 1000, 2)
    if record.usage is not None:
        fields["prompt_tokens"] = record.usage.prompt_tokens
        fields["completion_tokens"] = record.usage.completion_tokens
    if record.error_code is not None:
        fields["error_code"] = record.error_code
    if record.cache is not None:
        fields["cache"] = record.cache
    return fields


def set_state_gauges(*, cooldown: dict[str, bool], dependencies: dict[str, bool]) -> None:
    """Gauges read from state at scrape time (bounded labels: configured deployments)."""
    for deployment, cooling in cooldown.items():
        DEPLOYMENT_OPEN.labels(deployment).set(1 if cooling else 0)
    for name, up in dependencies.items():
        DEPENDENCY_UP.labels(name).set(1 if up else 0)


def render_metrics(multiprocess_dir: str | None) -> bytes:
    """The exposition text: all workers' values in multiprocess mode, this process's otherwise."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
