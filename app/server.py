"""The Gunicorn worker NeuroRoute runs on: gevent's, with what a stop or a reload needs.

On SIGTERM (a stop, or a reload retiring the old workers) Gunicorn's gevent worker stops
accepting and waits, up to ``graceful_timeout``, until every connection's handler is done;
then the arbiter kills it. A connection that sits idle between two requests (nginx keeps up
to 256 of them open) holds that wait until its keep-alive timeout, and whatever the worker
still had to write after the wait (usage records) died with it. :class:`GatewayWorker`:

- closes idle keep-alive connections at once (those with no request bytes waiting; a
  connection that becomes idle after the stop began is closed when it does), so a stop
  takes as long as the requests in flight, not the keep-alive timeout;
- ends the drain :func:`flush_margin` seconds before the arbiter's deadline: handlers still
  running then (streams longer than the graceful timeout) are stopped, which accounts for
  them;
- then writes the quota settlements and usage records the worker holds, before the kill.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import gevent
from gevent import monkey
from gunicorn.workers.ggevent import GeventWorker

# The arbiter imports this module before it forks the workers, which patch the standard
# library with gevent: nothing here may import ssl or sockets' users (requests, the app)
# at module level.
real_poll: Any = monkey.get_original("select", "poll")


def flush_margin(graceful_timeout: float) -> float:
    """Seconds kept for the final writes before the arbiter's kill."""
    return min(5.0, graceful_timeout / 4)


def _has_bytes(sock: Any) -> bool:
    """True when the client has sent something not read yet (a request on its way)."""
    try:
        poller = real_poll()  # the kernel's, not gevent's
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


class _IdleWait:
    """The wait for a connection's next request (Gunicorn's keep-alive timeout inside)."""

    __slots__ = ("worker", "timeout", "me")

    def __init__(self, worker: GatewayWorker) -> None:
        self.worker = worker
        self.timeout = gevent.Timeout(worker.cfg.keepalive, False)
        self.me = gevent.getcurrent()

    def __enter__(self) -> _IdleWait:
        self.worker.idle.add(self.me)
        if not self.worker.alive:  # became idle after the stop began: nothing more to serve
            self.worker.close_if_idle(self.me)
        self.timeout.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        self.worker.idle.discard(self.me)
        return bool(self.timeout.__exit__(*exc))  # True: its own expiry, silenced


class GatewayWorker(GeventWorker):  # type: ignore[misc]
    """Gunicorn's gevent worker that stops without waiting for idle connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: dict[Any, Any] = {}  # handler greenlet -> client socket
        self.idle: set[Any] = set()  # handlers waiting for their connection's next request
        self._stopping = False

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        me = gevent.getcurrent()
        self.connections[me] = client
        try:
            super().handle(listener, client, addr)
        finally:
            self.connections.pop(me, None)
            self.idle.discard(me)

    def timeout_ctx(self) -> _IdleWait:
        return _IdleWait(self)

    def close_if_idle(self, handler: Any) -> None:
        client = self.connections.get(handler)
        if client is not None and not _has_bytes(client):
            try:
                client.shutdown(socket.SHUT_RDWR)  # its handler reads EOF and ends
            except OSError:
                pass

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if not self._stopping:
            self._stopping = True
            gevent.spawn(self._stop)

    def _stop(self) -> None:
        started = time.monotonic()
        for handler in list(self.idle):
            self.close_if_idle(handler)
        deadline = started + self.cfg.graceful_timeout - flush_margin(self.cfg.graceful_timeout)
        while self.connections and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if self.connections:
            self.log.warning("stopping %d requests still running at the graceful timeout",
                             len(self.connections))
            gevent.killall(list(self.connections), block=True, timeout=1)
        self.flush()

    def flush(self) -> None:
        """Write what the worker holds: quota settlements, usage records, last-used times."""
        from app.gateway import EXTENSION_KEY

        gw = getattr(self.wsgi, "extensions", {}).get(EXTENSION_KEY)
        if gw is None:
            return
        margin = flush_margin(self.cfg.graceful_timeout)
        gw.admission.settler.drain()
        if gw.usage_writer is not None:
            gw.usage_writer.flush(timeout=margin)
        gw.sync.flush_last_used()
