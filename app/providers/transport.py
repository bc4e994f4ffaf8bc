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
- New connections look the upstream's address up in :class:`AddressCache` (numeric hosts
  need no lookup; names are resolved once per :data:`ADDRESS_TTL_S` per host, concurrent
  misses sharing one lookup). urllib3 calls ``getaddrinfo`` for every new connection, which
  gevent runs in its thread pool of 10: a burst of 2,000 new streams queued behind it for
  seconds, holding their requests' memory meanwhile (seen in the idle-streams bench).
- The answer is a :class:`LightResponse`: a ``requests.Response`` whose cookie jar is only
  built if someone asks for it.
- Errors are ``requests``' exceptions, as ``HTTPAdapter`` raises them.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import queue
import select
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.utils import get_encoding_from_headers
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

try:  # gevent's poll would create watchers: the real one asks the kernel once
    from gevent import monkey

    real_poll: Any = monkey.get_original("select", "poll")
except ImportError:  # pragma: no cover - the gateway always runs on gevent
    real_poll = select.poll

# Failures of a reused connection before any byte of the answer: the server had closed it.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)
_NO_TIME = datetime.timedelta(0)
ADDRESS_TTL_S = 30.0
AddressInfo = list[tuple[Any, ...]]


class AddressCache:
    """``getaddrinfo`` answers per (host, port, family), kept :data:`ADDRESS_TTL_S`."""

    def __init__(self, *, ttl: float = ADDRESS_TTL_S) -> None:
        self.ttl = ttl
        self._answers: dict[tuple[str, int, int], tuple[float, AddressInfo]] = {}
        self._pending: dict[tuple[str, int, int], threading.Event] = {}
        self._lock = threading.Lock()  # a miss claims its lookup atomically (threads too)

    def lookup(self, host: str, port: int, family: int) -> AddressInfo:
        host = host.strip("[]")
        key = (host, port, family)
        hit = self._answers.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:  # a numeric host: nothing to look up, ever
            af = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sockaddr = (host, port, 0, 0) if address.version == 6 else (host, port)
            answer = [(af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
            self._answers[key] = (float("inf"), answer)
            return answer
        while True:
            with self._lock:
                hit = self._answers.get(key)
                if hit is not None and hit[0] > time.monotonic():
                    return hit[1]
                pending = self._pending.get(key)
                if pending is None:
                    self._pending[key] = done = threading.Event()
                    break
            pending.wait()  # another request is looking it up: share its answer
            hit = self._answers.get(key)
            if hit is not None:
                return hit[1]
            # that lookup failed: make our own
        try:
            looked_up: AddressInfo = list(socket.getaddrinfo(host, port, family,
                                                             socket.SOCK_STREAM))
            self._answers[key] = (time.monotonic() + self.ttl, looked_up)
            return looked_up
        finally:
            del self._pending[key]
            done.set()


ADDRESSES = AddressCache()


def _connect(conn: Any) -> socket.socket:
    """urllib3's ``create_connection`` (first address that answers), with cached lookups."""
    err: OSError | None = None
    for af, socktype, proto, _name, sockaddr in ADDRESSES.lookup(
            conn._dns_host, conn.port, allowed_gai_family()):
        sock = socket.socket(af, socktype, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if conn.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(conn.timeout)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            err = exc
            sock.close()
    raise err or OSError("getaddrinfo returns an empty list")


class _CachedAddressMixin:
    """urllib3's ``_new_conn`` and its error mapping, on :data:`ADDRESSES`."""

    def _new_conn(self) -> socket.socket:
        try:
            return _connect(self)
        except socket.gaierror as exc:
            raise u3.NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined, arg-type]
        except TimeoutError as exc:
            raise u3.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out.") from exc  # type: ignore[attr-defined]
        except OSError as exc:
            raise u3.NewConnectionError(
                self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]


RESPONSE_BUFFER = 2048  # bytes of read buffer per upstream answer (http.client's: 8,192)


class _SmallBuffer:
    """What ``http.client.HTTPResponse`` is given as its socket: ``makefile`` with a smaller
    buffer. An idle stream keeps its answer's buffer for as long as it is open (8 KB each
    with the default, measured in the idle-streams bench); SSE events are a few hundred bytes,
    and larger reads bypass the buffer."""

    __slots__ = ("sock",)

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def makefile(self, mode: str) -> Any:
        return self.sock.makefile(mode, buffering=RESPONSE_BUFFER)


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(_SmallBuffer(sock), *args, **kwargs)  # type: ignore[arg-type]


class LeanHTTPConnection(_CachedAddressMixin, HTTPConnection):
    response_class = _Response


class LeanHTTPSConnection(_CachedAddressMixin, HTTPSConnection):
    response_class = _Response


def dropped(conn: Any) -> bool:
    """True if the server closed the idle connection (or sent something unasked for)."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False  # not connected: it connects when used
    poller = real_poll()
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
            built.ConnectionCls = LeanHTTPSConnection if built.scheme == "https" \
                else LeanHTTPConnection
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
            # A stream's response lives as long as the stream: it does not keep the request,
            # whose body and headers (~6 KB) would live as long (idle-stream memory, S4).
            response.request = None if stream else request  # type: ignore[assignment]
            response.connection = self
            if not stream:
                response._content = raw.data
                response._content_consumed = True
                raw.release_conn()  # read to the end: the connection is free again
            return response
        raise AssertionError("unreachable")
