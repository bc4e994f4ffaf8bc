"""Stored Responses API answers, for one process: writes, reads, retention and the purge.

**Writes.** A non-stream response is stored before it is answered, a stream's when its final
event (``response.completed``, ``.incomplete``, ``.failed``) arrives, before that event is
sent: either way a follow-up with ``previous_response_id`` finds it, whatever connection or
worker it comes on, and the stream waits for one insert at its very end, nothing more. A
write that fails is logged with the response id and counted
(``neuroroute_responses_store_failures_total``); the client still gets its answer (the
upstream was paid for it), and continuing from it is then a 400
``previous_response_not_found``.

**Retention.** A response is kept ``NEUROROUTE_RESPONSES_RETENTION_DAYS`` (30) after it, or
a later response continuing its conversation, was stored (to the hour: :data:`REFRESH_EVERY`):
a conversation in use is kept as a whole. Older ones are invisible at once (reads are bounded
by the window) and deleted by the purge: in the background (a greenlet in a worker) after a
write, at most once per :data:`PURGE_INTERVAL_S` per process, in batches; or by ``flask
responses purge``. ``0`` keeps them for ever.

Database failures on a read are a 503 ``response_store_unavailable``: the gateway never
answers "not found" for a response it could not look up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prometheus_client import Counter
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import responses as repo
from app.db.engine import Database
from app.db.responses import Owner
from app.errors import NotFoundError, ServiceUnavailableError
from app.surfaces.responses_store import MAX_CHAIN, StoredResponse, load_history

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
# A conversation's earlier responses are marked active again at most this often.
REFRESH_EVERY = timedelta(hours=1)
PURGE_BATCH = 1000  # rows per delete statement; the event loop is handed back between two
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STORED = Counter("neuroroute_responses_stored_total", "Responses API answers stored")
STORE_FAILURES = Counter("neuroroute_responses_store_failures_total",
                         "Responses API answers that could not be stored (each one logged)")
PURGED = Counter("neuroroute_responses_purged_total",
                 "Stored responses deleted after the retention period")


def unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("The response store is unavailable; retry shortly.",
                                   code="response_store_unavailable")


def not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.", param="response_id")


class ResponseStore:
    """The stored responses of this process's database (see the module docstring)."""

    def __init__(self, *, db: Database, retention_days: int,
                 purge_interval: float = PURGE_INTERVAL_S, batch: int = PURGE_BATCH,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.retention_days = retention_days
        self.purge_interval = purge_interval
        self.batch = batch
        self.clock = clock
        self._next_purge = 0.0  # the first write of a process purges what expired meanwhile
        self._purge_lock = threading.Lock()
        self.purge_thread: threading.Thread | None = None  # the last background purge

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def since(self, now: datetime | None = None) -> datetime:
        """The oldest activity still within the retention window."""
        if not self.retention_days:
            return EPOCH
        return (now or self.now()) - timedelta(days=self.retention_days)

    # --- reads -----------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session for a read (or a delete) the request waits for: a database error is 503
        ``response_store_unavailable``, never a 404."""
        try:
            with self.db.session() as session:
                yield session
        except SQLAlchemyError as exc:
            log.warning("response store unavailable", extra={"error": type(exc).__name__})
            raise unavailable() from None

    def history(self, owner: Owner, previous_id: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The conversation before a request that continues ``previous_id`` (its items, oldest
        first) and the ids of its responses. Raises InvalidRequestError (400,
        ``previous_response_not_found``) when one is missing, foreign or expired."""
        with self._reading() as session:
            found = repo.chain(session, previous_id, owner=owner, since=self.since(),
                               limit=MAX_CHAIN)
        items = load_history(previous_id, lambda i: cast(StoredResponse | None, found.get(i)))
        return items, list(found)

    def get(self, owner: Owner, response_id: str) -> StoredResponse:
        """A stored response; NotFoundError (404) when the owner cannot see it."""
        with self._reading() as session:
            data = repo.get(session, response_id, owner=owner, since=self.since())
        if data is None:
            raise not_found(response_id)
        return cast(StoredResponse, data)

    def delete(self, owner: Owner, response_id: str) -> None:
        """Delete a stored response; NotFoundError (404) when the owner cannot see it."""
        with self._reading() as session:
            deleted = repo.remove(session, response_id, owner=owner, since=self.since())
        if not deleted:
            raise not_found(response_id)

    # --- writes ----------------------------------------------------------------------------

    def save(self, owner: Owner, stored: StoredResponse, *, model: str | None,
             chain: Sequence[str] = ()) -> bool:
        """Store a response (``chain``: the responses it continues); never raises: a failure
        is logged and counted, and False returned."""
        try:
            now = self.now()
            with self.db.session() as session:
                repo.save(session, owner=owner, data=dict(stored), model=model, now=now,
                          chain=chain, refresh_before=now - REFRESH_EVERY)
        except Exception:  # noqa: BLE001 - the client gets its answer anyway; said loudly here
            STORE_FAILURES.inc()
            log.exception("response not stored", extra={"response_id": stored["id"],
                                                        "key_id": owner.key_id})
            return False
        STORED.inc()
        self._maybe_purge()
        return True

    # --- retention -------------------------------------------------------------------------

    def purge(self, *, now: datetime | None = None) -> int:
        """Delete every response past the retention window, batch by batch; how many."""
        if not self.retention_days:
            return 0
        before = self.since(now)
        total = 0
        while True:
            with self.db.session() as session:
                deleted = repo.purge(session, before=before, batch=self.batch)
            total += deleted
            if deleted < self.batch:
                break
            time.sleep(0)  # a gevent yield between two batches
        if total:
            PURGED.inc(total)
            log.info("purged expired responses", extra={"deleted": total})
        return total

    def _maybe_purge(self) -> None:
        if not self.retention_days or self.clock() < self._next_purge:
            return
        if not self._purge_lock.acquire(blocking=False):
            return  # one is running
        self._next_purge = self.clock() + self.purge_interval
        self.purge_thread = threading.Thread(target=self._purge_in_background,
                                             name="responses-purge", daemon=True)
        self.purge_thread.start()

    def _purge_in_background(self) -> None:
        try:
            self.purge()
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("purging expired responses failed")
        finally:
            self._purge_lock.release()
