"""Keeps one worker in step with the shared database: key revocations, deployments, last used.

Every admin change bumps a counter in ``sync_versions`` in the same transaction. Each worker
reads those counters at most every ``NEUROROUTE_SYNC_INTERVAL`` seconds (one small query, done
by the first request after the interval, never by every request) and, when one moved:

* ``keys``: drops its key cache, so the next request with any key re-reads it;
* ``deployments``: rebuilds its model registry from the YAML file plus the stored deployments.

Hence the bound: a change made on any instance is seen by every worker of every instance
within ``sync_interval`` seconds of the change plus one query (2 s by default). Precisely: no
request is answered from a view read more than ``sync_interval`` seconds before the request
arrived; when the view is older, the request waits for the read (the one in flight, or its
own), so a burst after an idle period is never served from the old view while one of its
requests runs the query (a PostgreSQL query yields to the other greenlets). It needs no
message bus, only the database every instance already shares. When the database is down the
worker keeps its current state (the documented degraded mode) and one request per interval
tries again.

With ``NEUROROUTE_REDIS_URL`` set, the worker that made a change also publishes a "changed"
ping on a Redis channel; every worker listens (one greenlet each) and re-syncs at once, so
changes usually land in milliseconds. The ping carries no data (the database stays the only
source of truth) and a lost ping only means waiting for the next poll: Redis being down
never weakens the bound above.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.auth.keys import LastUsedTracker
from app.db import repo
from app.db.engine import Database

log = logging.getLogger(__name__)

SYNC_CHANNEL = "neuroroute:sync"
# Seconds between attempts to (re)subscribe while Redis is unreachable.
RESUBSCRIBE_DELAY = 2.0


class RedisAnnouncer:
    """Publishes and listens for "something changed" pings on a Redis pub/sub channel."""

    def __init__(self, url: str, *, channel: str = SYNC_CHANNEL) -> None:
        # Short timeouts: a publish happens inside an admin request and must not hang it.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._channel = channel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()

    def publish(self) -> None:
        """Announce a change; a failure is logged and left to polling (fails open)."""
        try:
            self._client.publish(self._channel, b"changed")
        except RedisError as exc:
            log.warning("could not announce a change on Redis; workers will poll",
                        extra={"error": type(exc).__name__})

    def start(self, on_change: Callable[[], None]) -> None:
        """Listen in the background (a greenlet under gevent); idempotent."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen, args=(on_change,), daemon=True,
                                        name="neuroroute-sync-listener")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the Redis client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()

    def _listen(self, on_change: Callable[[], None]) -> None:
        failing = False
        while not self._stop.is_set():
            pubsub = self._client.pubsub(  # type: ignore[no-untyped-call]  # untyped in redis-py
                ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                self.subscribed.set()
                failing = False
                on_change()  # (re)subscribed: catch up with anything announced meanwhile
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        on_change()
            except RedisError as exc:
                self.subscribed.clear()
                if not failing:
                    log.warning("Redis sync channel unavailable; polling only",
                                extra={"error": type(exc).__name__})
                failing = True
                self._stop.wait(RESUBSCRIBE_DELAY)
            except Exception:  # noqa: BLE001 - the listener must outlive any one bad refresh
                log.exception("sync listener error")
                self._stop.wait(RESUBSCRIBE_DELAY)
            finally:
                pubsub.close()


class StateSync:
    """Per-process sync with the shared database (see the module docstring)."""

    def __init__(self, *, db: Database, interval: float, flush_interval: float,
                 last_used: LastUsedTracker, on_keys_changed: Callable[[], None],
                 on_deployments_changed: Callable[[], None],
                 announcer: RedisAnnouncer | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self.announcer = announcer
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
        # The state is as fresh as the start of the last successful read of the counters:
        # that read saw every change committed before it began.
        self._verified_at = now - interval  # nothing verified yet: the first request checks
        self._attempt_started = self._verified_at
        # While the database is down, the next attempt is not made before this.
        self._retry_at = now
        self._next_flush = now + flush_interval
        # One refresh at a time per process, so an older reload never replaces a newer one;
        # requests that need a fresh state wait on it for the refresh in flight.
        # (threading.Lock is cooperative under gevent's monkey-patching.)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def maybe_refresh(self) -> None:
        """Called before every request is answered: makes sure the worker's view of keys and
        deployments was read from the database at most ``interval`` seconds before the request
        arrived; waits for the read when it is due (the common case is a clock comparison).

        A refresh that another greenlet has in flight is waited for, not skipped: a query on
        PostgreSQL yields, and the requests of a burst that arrive meanwhile must not be
        answered from the old state. While the database is down the cached state is served
        (the documented degraded mode) and one request per interval tries the database again.
        """
        if self.announcer is not None:
            # Started by the first request, i.e. in the serving worker after the fork (and
            # not in CLI processes, which build the app too).
            self.announcer.start(self.refresh)
        arrived = self._clock()
        if arrived - self._verified_at >= self._interval:
            self._ensure_fresh(arrived)
        if arrived >= self._next_flush and self._flush_lock.acquire(blocking=False):
            try:
                self._next_flush = arrived + self._flush_interval
                self.flush_last_used()
            finally:
                self._flush_lock.release()

    def _ensure_fresh(self, arrived: float) -> None:
        if not self.healthy and arrived < self._retry_at:
            return  # database down: serve the cached state until the next attempt is due
        with self._lock:
            if self._verified_at > arrived - self._interval:
                return  # a read that began within the bound of this request's arrival
            if not self.healthy and self._attempt_started > arrived - self._interval:
                return  # that read failed: the database is down, serve the cached state
            self._refresh()

    def refresh(self) -> None:
        """Read the counters now and apply whatever changed (waits for a running refresh)."""
        with self._lock:
            self._refresh()

    def changed(self) -> None:
        """After committing an admin change: apply it here at once and tell the others."""
        self.refresh()
        if self.announcer is not None:
            self.announcer.publish()

    def stop(self) -> None:
        """Stop listening (tests, shutdown)."""
        if self.announcer is not None:
            self.announcer.stop()

    def _refresh(self) -> None:
        started = self._attempt_started = self._clock()
        # Requests of a burst arriving while this attempt runs against a database that was
        # down do not queue behind it for its connect timeout: they see the degraded state.
        self._retry_at = started + self._interval
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
        self._verified_at = started

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
