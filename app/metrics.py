"""Prometheus metrics: their definitions, and a recorder that batches the per-request updates.

prometheus-client runs in multiprocess mode under Gunicorn (the directory is prepared by
``gunicorn.conf.py``), so ``/metrics`` on any worker reports all workers. There, every update
takes a lock and writes to a memory-mapped file (about 4 us with the label lookup, measured;
a request makes about ten). :class:`Recorder` instead adds the request's updates to a plain
dict (no lock: one greenlet at a time runs Python code in a worker) and writes the sums every
:data:`FLUSH_INTERVAL_S`, before a scrape and when the worker exits. Counts are therefore up
to that long late, never lost while the worker lives.

Label values are bounded: model and deployment labels only take configured names (anything
else is ``other``), never keys or request ids.
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
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
                 ["model", "direction", "api"])
COST = Counter("neuroroute_cost_usd_total", "Upstream cost of served requests in USD",
               ["model", "api"])
CACHE = Counter("neuroroute_cache_requests_total", "Chat requests by response-cache result",
                ["result"])
REFUSED = Counter("neuroroute_refused_total",
                  "Requests refused by a rate limit or a budget (429)", ["reason"])
RETRIES = Counter("neuroroute_upstream_retries_total",
                  "Upstream attempts beyond the first (retries and fallbacks)", ["model"])
FALLBACKS = Counter("neuroroute_fallbacks_total", "Requests served by a fallback group",
                    ["model"])
STREAM_ERRORS = Counter("neuroroute_stream_errors_total",
                        "Streams that failed after their first byte (ended with an error event)",
                        ["deployment", "code"])
DB_STATEMENTS = Counter("neuroroute_db_statements_total",
                        "SQL statements sent to the database", ["kind"])
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


class Recorder:
    """Batched metric updates of one process (see the module docstring).

    In-flight gauges are plain integers here, written to their gauges at each flush.
    """

    def __init__(self, *, interval: float = FLUSH_INTERVAL_S) -> None:
        self.interval = interval
        self._counts: dict[tuple[Counter, tuple[str, ...]], float] = {}
        # histogram, labels -> [count per bucket (+Inf last), sum]
        self._histograms: dict[tuple[Histogram, tuple[str, ...]], list[float]] = {}
        self.in_flight = 0
        self.in_flight_streams = 0
        self._written = (0, 0)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def inc(self, counter: Counter, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (counter, labels)
        self._counts[key] = self._counts.get(key, 0.0) + amount

    def observe(self, histogram: Histogram, labels: tuple[str, ...], value: float) -> None:
        key = (histogram, labels)
        slots = self._histograms.get(key)
        if slots is None:
            slots = self._histograms[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        slots[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        slots[-1] += value

    def flush(self) -> None:
        """Write what was recorded since the last flush to the metric files."""
        counts, self._counts = self._counts, {}
        histograms, self._histograms = self._histograms, {}
        for (counter, labels), amount in counts.items():
            (counter.labels(*labels) if labels else counter).inc(amount)
        for (histogram, labels), slots in histograms.items():
            _add_to_histogram(histogram.labels(*labels), slots)
        state = (self.in_flight, self.in_flight_streams)
        if state != self._written:
            IN_FLIGHT.set(self.in_flight)
            IN_FLIGHT_STREAMS.set(self.in_flight_streams)
            self._written = state

    def start(self) -> None:
        """Flush every ``interval`` seconds in the background (a greenlet in a worker)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics-flush",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a failed flush must not end the flushing
                log.exception("metrics flush failed")


def _add_to_histogram(child: Any, slots: list[float]) -> None:
    """Add pre-bucketed observations to a histogram child.

    prometheus-client has no bulk observe; a child keeps one value per bucket (not
    cumulative: the exposition sums them) and one for the sum, which is what is added to.
    """
    for index, count in enumerate(slots[:-1]):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(slots[-1])


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


class Labels:
    """Bounded label values: only configured model and deployment names (else ``other``)."""

    def __init__(self, *, models: set[str], deployments: set[str]) -> None:
        self.models = models
        self.deployments = deployments

    def model(self, model: str | None) -> str:
        if model is None:
            return "none"
        return model if model in self.models else OTHER

    def deployment(self, deployment: str | None) -> str:
        if deployment is None:
            return "none"
        return deployment if deployment in self.deployments else OTHER


