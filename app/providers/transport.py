"""A leaner transport for ``requests``: the adapter every provider session mounts.

The gateway's upstream calls are always the same shape: a prepared POST to a pooled host,
no proxy, no client certificate, no redirects, no cookies. For that shape
:class:`LeanAdapter` drives urllib3's connection objects directly instead of going through
``Session.send`` (hooks, cookie extraction, redirect resolution), ``HTTPAdapter.send`` and
``HTTPConnectionPool.urlopen`` (retry and timeout objects): measured in one process on this
machine, 398 -> 192 us of CPU per relayed request (``Session.post`` as the bare relay calls
it: 705). Anything else (a proxy, a client certificate) goes to ``HTTPAdapter.send``
unchanged.

- A pooled connection is checked with one non-blocking ``poll()`` of its socket (the real
  one, not gevent's, which would build watchers for it), which tells whether the server
  closed it. A connection that still fails before any byte of the answer (the server closed
  it just then) is replaced and the request sent again, once: the server never saw it.
- Connections come from, and go back to, the urllib3 pool ``HTTPAdapter`` built for the host
  (its TLS settings included). A non-stream answer is read at once and its connection given
  back; a stream's connection goes back when its body was read to the end, and is closed
  when the stream is closed early.
- The answer is a :class:`LightResponse`: a ``requests.Response`` whose cookie jar is only
  built if someone asks for it.
- Errors are ``requests``' exceptions, as ``HTTPAdapter`` raises them.
"""

from __future__ import annotations

import datetime
import http.client
import queue
import select
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.utils import get_encoding_from_headers
from urllib3 import exceptions as u3
from urllib3.connectionpool import HTTPConnectionPool

try:  # gevent's poll would create watchers: the real one asks the kernel once
    from gevent import monkey

    _poll: Any = monkey.get_original("select", "poll")
except ImportError:  # pragma: no cover - the gateway always runs on gevent
    _poll = select.poll

# Failures of a reused connection before any byte of the answer: the server had closed it.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)
_NO_TIME = datetime.timedelta(0)


def dropped(conn: Any) -> bool:
    """True if the server closed the idle connection (or sent something unasked for)."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False  # not connected: it connects when used
    poller = _poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


class LightResponse(requests.Response):
    """A ``requests.Response`` built with the least work: its cookie jar only on demand."""

    def __init__(self) -> None:  # requests.Response.__init__ builds a cookie jar eagerly
        self._content = False  # type: ignore[assignment]  # requests' own "not read yet"
        self._content_consumed = False
        self._next = None
        self.history = []
        self.elapsed = _NO_TIME
        self._jar: RequestsCookieJar | None = None

    @property
    def cookies(self) -> RequestsCookieJar:
        if self._jar is None:
            self._jar = RequestsCookieJar()
        return self._jar

    @cookies.setter
    def cookies(self, jar: RequestsCookieJar) -> None:
        self._jar = jar


class LeanAdapter(HTTPAdapter):
    """``HTTPAdapter`` with a short path for the gateway's own upstream calls."""

    def __init__(self, *, pool_maxsize: int) -> None:
        super().__init__(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0,
                         pool_block=False)
        self._pools: dict[tuple[str, bool], Any] = {}
        self._paths: dict[str, str] = {}  # URL -> path: PreparedRequest.path_url parses it

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        if proxies or cert is not None or not isinstance(timeout, tuple) or \
                not isinstance(verify, bool) or not isinstance(request.body, (bytes, type(None))):
            return super().send(request, stream=stream, timeout=timeout, verify=verify,
                                cert=cert, proxies=proxies)
        try:
            return self._send(request, stream, timeout, verify)
        except requests.RequestException:  # already mapped (an OSError too)
            raise
        except u3.NewConnectionError as exc:  # (a subclass of ConnectTimeoutError)
            raise requests.ConnectionError(exc, request=request) from None
        except u3.ConnectTimeoutError as exc:
            raise requests.ConnectTimeout(exc, request=request) from None
        except u3.ReadTimeoutError as exc:  # while reading the body of a non-stream answer
            raise requests.ReadTimeout(exc, request=request) from None
        except (u3.HTTPError, OSError) as exc:  # protocol, decoding, TLS, socket errors
            raise requests.ConnectionError(exc, request=request) from None

    def _pool(self, request: requests.PreparedRequest, verify: bool) -> HTTPConnectionPool:
        """The urllib3 pool of the request's origin, as HTTPAdapter configures it."""
        origin = "/".join((request.url or "").split("/", 3)[:3])
        pool: HTTPConnectionPool | None = self._pools.get((origin, verify))
        if pool is None:
            built: Any = self.get_connection_with_tls_context(request, verify, proxies=None,
                                                              cert=None)
            pool = self._pools[(origin, verify)] = built
        return pool

    def _take(self, pool: HTTPConnectionPool) -> tuple[Any, bool]:
        """A connection of the pool (or a new one) and whether it is an open, reused one."""
        conn = None
        try:
            if pool.pool is not None:
                conn = pool.pool.get(block=False)
        except queue.Empty:  # every slot busy: an extra connection, discarded when returned
            conn = None
        if conn is None:
            return pool._new_conn(), False
        if conn.sock is not None and dropped(conn):
            conn.close()
        return conn, conn.sock is not None

    def _send(self, request: requests.PreparedRequest, stream: bool,
              timeout: tuple[float, float], verify: bool) -> requests.Response:
        pool = self._pool(request, verify)
        url = request.url or ""
        path = self._paths.get(url)
        if path is None:
            path = self._paths[url] = request.path_url
        connect_timeout, read_timeout = timeout
        for attempt in (1, 2):
            conn, reused = self._take(pool)
            try:
                conn.timeout = connect_timeout
                conn.request(request.method or "POST", path, body=request.body,
                             headers=request.headers, chunked=False,
                             preload_content=not stream, decode_content=not stream,
                             enforce_content_length=True)
                conn.timeout = read_timeout
                raw = conn.getresponse()  # a non-stream body is read here
            except BaseException as exc:
                connected = conn.sock is not None
                conn.close()
                pool._put_conn(None)  # the slot goes back empty
                if isinstance(exc, _STALE) and reused and attempt == 1:
                    continue
                if isinstance(exc, TimeoutError):  # socket.timeout
                    raise (requests.ReadTimeout if connected else requests.ConnectTimeout)(
                        exc, request=request) from None
                raise
            raw._connection = conn
            raw._pool = pool
            response = LightResponse()
            response.status_code = raw.status
            response.headers = raw.headers  # case-insensitive, like requests' own
            response.encoding = get_encoding_from_headers(raw.headers)
            response.raw = raw
            response.reason = raw.reason
            response.url = request.url or ""
            response.request = request
            response.connection = self
            if not stream:
                response._content = raw.data
                response._content_consumed = True
                raw.release_conn()  # read to the end: the connection is free again
            return response
        raise AssertionError("unreachable")
