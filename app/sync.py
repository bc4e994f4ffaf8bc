"""Keeps one worker in step with the shared database: key revocations, deployments, last used.

Every admin change bumps a counter in ``sync_versions`` in the same transaction. Each worker
reads those counters at most every ``NEUROROUTE_SYNC_INTERVAL`` seconds (one small query, done
by the first request after the interval, never by every request) and, when one moved:

* ``keys``: drops its key cache, so the next request with any key re-reads it;
* ``deployments``: rebuilds its model registry from the YAML file plus the stored deployments.

Hence the bound: a change made on any instance is seen by every worker of every instance
within ``sync_interval`` seconds of the change plus one query (2 s by default). It needs no
message bus, only the database every instance already shares. When the database is down the
worker keeps its current state and retries at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from app.auth.keys import LastUsedTracker
from app.db import repo
from app.db.engine import Database

log = logging.getLogger(__name__)


class StateSync:
    def __init__(self, *, db: Database, interval: float, flush_interval: float,
                 last_used: LastUsedTracker, on_keys_changed: Callable[[], None],
                 on_deployments_changed: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._interval = interval
        self._flush_interval = flush_interval
        self._last_used = last_used
        self._on_keys = on_keys_changed
        self._on_deployments = on_deployments_changed
        self._clock = clock
        # None: never read (e.g. the database was down at start): the first read reloads all.
        self.versions: dict[str, int] | None = None
        self.healthy = False
        now = clock()
        self._next_check = now + interval
        self._next_flush = now + flush_interval
        # One refresh at a time per process, so an older reload never replaces a newer one.
        # (threading.Lock is cooperative under gevent's monkey-patching.)
        self._lock = threading.Lock()

    def maybe_refresh(self) -> None:
        """Called on every request: a clock comparison, and a refresh when one is due."""
        now = self._clock()
        if now < self._next_check:
            return
        if not self._lock.acquire(blocking=False):
            return  # another greenlet is refreshing: do not wait for it, do not pile up
        try:
            # Set before the query, so a slow database is not asked again by every request.
            self._next_check = now + self._interval
            self._refresh()
            if now >= self._next_flush:
                self._next_flush = now + self._flush_interval
                self.flush_last_used()
        finally:
            self._lock.release()

    def refresh(self) -> None:
        """Read the counters now and apply whatever changed (waits for a running refresh)."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        try:
            with self._db.session() as session:
                versions = repo.read_versions(session)
            old = self.versions
            if old is None or old.get(repo.KEYS) != versions.get(repo.KEYS):
                self._on_keys()
            if old is None or old.get(repo.DEPLOYMENTS) != versions.get(repo.DEPLOYMENTS):
                self._on_deployments()
        except SQLAlchemyError as exc:
            # The versions are not advanced, so whatever failed is retried next interval.
            if self.healthy:
                log.warning("database unavailable: keeping cached keys and deployments",
                            extra={"error": type(exc).__name__})
            self.healthy = False
            return
        self.versions = versions
        self.healthy = True

    def flush_last_used(self) -> None:
        """Write the pending "last used" times in one transaction; keep them if that fails."""
        pending = self._last_used.drain()
        if not pending:
            return
        try:
            with self._db.session() as session:
                repo.touch_last_used(session, pending)
        except SQLAlchemyError as exc:
            self._last_used.restore(pending)
            log.warning("could not write last-used times; will retry",
                        extra={"error": type(exc).__name__, "keys": len(pending)})
