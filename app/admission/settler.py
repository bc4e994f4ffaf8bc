"""Settlements in Redis, applied off the request's greenlet, several requests per call.

A request's settlement (extra tokens, its budgets' real cost, a cache entry) is queued when
its response is closed and applied by one background greenlet: the connection the request
came on is free for its next request at once (a keep-alive client, nginx among them, would
otherwise wait for this round trip before its next request is read), and the settlements of
the requests that finished meanwhile go to Redis as one ``SETTLE`` call (amounts per key
summed). Under load that is well under one command per request; idle, one per request, a
few milliseconds after it. :meth:`Settler.drain` applies what is queued at once (shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from app.admission.quota import Settlement

log = logging.getLogger(__name__)

MAX_BATCH = 256  # settlements per script call (bounds the call's size)


class Settler:
    def __init__(self, *, apply: Callable[[Settlement], None],
                 failed: Callable[[Settlement, BaseException], None]) -> None:
        self._apply = apply  # one Redis call; raises redis.RedisError
        self._failed = failed  # what to do with a settlement Redis did not take
        self._queue: deque[Settlement] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the background loop and drain() never apply at once

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, settlement: Settlement) -> None:
        self._queue.append(settlement)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="quota-settler", daemon=True)
            self._thread.start()
        self._wake.set()

    def drain(self) -> None:
        """Apply everything queued now, in calls of at most MAX_BATCH settlements."""
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(MAX_BATCH, len(self._queue)))]
                merged = Settlement.merge(batch)
                try:
                    self._apply(merged)
                except Exception as exc:  # noqa: BLE001 - Redis down: handed to the fallback
                    self._failed(merged, exc)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.drain()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad batch
                log.exception("quota settlement failed")
