"""Usage records and the bounded queue a background writer drains into the database.

The request path only appends to an in-process deque (no lock, no I/O, no metric update). A
writer thread (a greenlet under the gevent worker, whose ``threading`` is patched) takes
batches and hands them to a sink. When the sink fails because the database is unreachable,
the batch goes back to the front of the queue and the writer retries with backoff, so records
are written once the database is back. When the database refuses the data itself (a value it
cannot store), retrying would block the queue forever: the batch is split until the refused
record is alone, and that one record is dropped, counted and logged. The queue is bounded:
past ``max_queue`` new records are dropped, counted in metrics and logged, never silently.
``flush()`` drains the queue at shutdown (SIGTERM, reload).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge("neuroroute_usage_queue_depth", "Usage records waiting to be written",
                    multiprocess_mode="livesum")
DROPPED = Counter("neuroroute_usage_dropped_total",
                  "Usage records dropped because the queue was full")
WRITTEN = Counter("neuroroute_usage_written_total", "Usage records written to the database")
REJECTED = Counter("neuroroute_usage_rejected_total",
                   "Usage records the database refused as data (dropped after isolating them)")
WRITE_FAILURES = Counter("neuroroute_usage_write_failures_total",
                         "Failed attempts to write a batch of usage records")
DB_UP = Gauge("neuroroute_database_up", "1 when the last usage write succeeded",
              multiprocess_mode="liveall")


@dataclass(slots=True)
class UsageRecord:
    """One chat completion request, whatever its outcome."""

    request_id: str
    created_at: float  # epoch seconds
    key_id: str | None
    user_id: str | None
    team_id: str | None
    model: str | None  # as requested by the client
    deployment: str | None  # the deployment that served (None: none was reached)
    provider: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    estimated: bool  # tokens estimated by the gateway (no usage from the upstream)
    cost: float  # USD
    price_known: bool
    latency_ms: float
    ttft_ms: float | None
    status: int
    error_code: str | None
    stream: bool
    cache_hit: bool
    cancelled: bool  # the client went away before the answer was complete
    attempts: int | None
    route: str | None = None  # the auto router's decision, when it decided
    api: str = "chat.completions"  # the API surface the client called


class UsageSink(Protocol):
    def write(self, records: Sequence[UsageRecord]) -> None:
        """Persist ``records`` atomically; raise on failure (they will be retried)."""

    def rejects(self, exc: BaseException) -> bool:
        """True when ``exc`` means the database refused the data (retrying cannot help)."""


class UsageWriter:
    def __init__(self, sink: UsageSink, *, max_queue: int = 100_000, batch_size: int = 500,
                 interval: float = 0.5, max_backoff: float = 10.0) -> None:
        self.sink = sink
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = interval
        self.max_backoff = max_backoff
        self._queue: collections.deque[UsageRecord] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the writer loop and flush() never write at once
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.healthy = True
        self._last_drop_log = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, record: UsageRecord) -> bool:
        """Queue a record; False (and counted) when the queue is full."""
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            DROPPED.inc()
            now = time.monotonic()
            if now - self._last_drop_log > 10:  # at most one line per 10 s under overflow
                self._last_drop_log = now
                log.error("usage queue full (%d records): %d records dropped so far",
                          self.max_queue, self.dropped)
            return False
        if self._thread is None:
            self.start()  # on first use: an app that never serves starts no writer
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self._thread.start()

    def _take(self, limit: int) -> list[UsageRecord]:
        batch: list[UsageRecord] = []
        while self._queue and len(batch) < limit:
            batch.append(self._queue.popleft())
        return batch

    def _write(self, batch: list[UsageRecord]) -> bool:
        """Write ``batch``. When the database refuses its data, halve it until each refused
        record is alone: the others are written, that one is dropped (logged and counted).
        When the database cannot be reached, what is not written yet goes back to the front
        of the queue, in order, and False is returned."""
        pending: list[list[UsageRecord]] = [batch]
        while pending:
            part = pending.pop()
            try:
                self.sink.write(part)
            except Exception as exc:  # noqa: BLE001 - sorted below: refused data or outage
                if self.sink.rejects(exc):
                    if len(part) == 1:
                        REJECTED.inc()
                        log.error("usage record %s refused by the database, dropped: %s",
                                  part[0].request_id, exc)
                    else:
                        middle = len(part) // 2
                        pending += [part[middle:], part[:middle]]  # first half first
                    continue
                unwritten = [r for chunk in (part, *reversed(pending)) for r in chunk]
                self._queue.extendleft(reversed(unwritten))
                QUEUE_DEPTH.set(len(self._queue))
                WRITE_FAILURES.inc()
                DB_UP.set(0)
                if self.healthy:
                    log.warning("usage write failed, keeping %d queued records: %s",
                                len(self._queue), type(exc).__name__)
                self.healthy = False
                return False
            WRITTEN.inc(len(part))
        QUEUE_DEPTH.set(len(self._queue))
        DB_UP.set(1)
        if not self.healthy:
            log.info("usage writes recovered")
        self.healthy = True
        return True

    def write_pending(self) -> bool:
        """Write the records queued when called, batch by batch; False when a write failed.

        Records that arrive during the writes wait for the next round. Chasing them would
        turn steady traffic into a stream of one- or two-record transactions (a write yields
        to the requests, which queue a record or two meanwhile): the per-transaction cost,
        paid per record, is what made recording expensive on PostgreSQL.
        """
        # A sink that blocks the event loop (SQLite) takes at most max_batch records per call,
        # and the requests get the loop back between two calls.
        limit = min(self.batch_size, getattr(self.sink, "max_batch", self.batch_size))
        with self._write_lock:
            remaining = len(self._queue)
            while remaining > 0 and self._queue:
                batch = self._take(min(remaining, limit))
                remaining -= len(batch)
                if not self._write(batch):
                    return False
                if remaining > 0:
                    time.sleep(0)  # a gevent yield in a worker
        return True

    def _run(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self.write_pending():
                backoff = self.interval
            else:
                backoff = min(self.max_backoff, backoff * 2)

    def flush(self, timeout: float = 10.0) -> bool:
        """Drain the queue (at shutdown); True when everything was written in time."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            if not self.write_pending():
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if self._queue:
            log.error("shutdown with %d usage records not written", len(self._queue))
        return not self._queue

    def stop(self, timeout: float = 10.0) -> bool:
        self._stop.set()
        self._wake.set()
        return self.flush(timeout)
