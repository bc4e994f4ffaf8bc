"""The lean transport against a real socket server: reuse, stale connections, timeouts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from app.providers.transport import LeanAdapter, dropped

Handler = Callable[[socket.socket, int], None]


def reply(conn: socket.socket, body: bytes = b'{"ok":true}', *, close: bool = False) -> None:
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()
    conn.sendall(head + body)


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


class Server:
    """Accepts connections; ``handler(conn, n)`` serves the n-th request of the server."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.requests = 0
        self.connections = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while read_request(conn):
                self.requests += 1
                self.handler(conn, self.requests)
        except OSError:
            pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def close(self) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def start(handler: Handler) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def post(adapter: LeanAdapter, url: str, *, stream: bool = False,
         timeout: tuple[float, float] = (2, 2)) -> requests.Response:
    prep = requests.Request("POST", url, data=b'{"model":"m"}',
                            headers={"Content-Type": "application/json"}).prepare()
    return adapter.send(prep, stream=stream, timeout=timeout)


def test_connections_are_reused(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda conn, n: reply(conn, b'{"n":%d}' % n))
    adapter = LeanAdapter(pool_maxsize=4)
    bodies = [post(adapter, server.url).content for _ in range(5)]
    assert bodies == [b'{"n":%d}' % n for n in range(1, 6)]
    assert server.connections == 1


def test_a_connection_the_server_closed_is_not_reused(serve: Callable[[Handler], Server]
                                                     ) -> None:
    server = serve(lambda conn, n: reply(conn, close=True) or conn.close())  # type: ignore[func-returns-value]
    adapter = LeanAdapter(pool_maxsize=4)
    assert post(adapter, server.url).status_code == 200
    time.sleep(0.1)
    conn = adapter._pools[next(iter(adapter._pools))].pool.queue[-1]  # type: ignore[union-attr]
    assert conn is None or conn.sock is None or dropped(conn)
    assert post(adapter, server.url).status_code == 200  # a fresh connection, no error
    assert server.connections == 2


def test_a_stale_connection_is_retried_once_on_a_fresh_one(
        serve: Callable[[Handler], Server]) -> None:
    """The server closes the idle connection after the poll said it was alive: the request
    fails before any byte of the answer, and goes again on a new connection."""
    server = serve(lambda conn, n: reply(conn) if n != 2 else conn.close())
    adapter = LeanAdapter(pool_maxsize=4)
    assert post(adapter, server.url).status_code == 200
    assert post(adapter, server.url).status_code == 200  # request 2 lost, request 3 answered
    assert server.requests == 3 and server.connections == 2


def test_a_fresh_connection_that_fails_is_an_error(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda conn, n: conn.close())
    with pytest.raises(requests.ConnectionError):
        post(LeanAdapter(pool_maxsize=4), server.url)
    assert server.requests == 1  # not retried: it was not a reused connection


def test_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as info:
        post(LeanAdapter(pool_maxsize=4), f"http://127.0.0.1:{port}/v1")
    assert not isinstance(info.value, requests.Timeout)


def test_no_answer_is_a_read_timeout(serve: Callable[[Handler], Server]) -> None:
    server = serve(lambda conn, n: time.sleep(1))
    with pytest.raises(requests.ReadTimeout):
        post(LeanAdapter(pool_maxsize=4), server.url, timeout=(2, 0.2))


def test_a_body_that_stalls_after_the_headers_is_a_read_timeout(
        serve: Callable[[Handler], Server]) -> None:
    def stall(conn: socket.socket, n: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")
        time.sleep(1)

    server = serve(stall)
    with pytest.raises(requests.ReadTimeout):
        post(LeanAdapter(pool_maxsize=4), server.url, timeout=(2, 0.2))


def test_streams_release_their_connection_when_read_and_close_it_when_left(
        serve: Callable[[Handler], Server]) -> None:
    events = b"data: {\"a\":1}\n\ndata: [DONE]\n\n"

    def sse(conn: socket.socket, n: int) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(events), events))

    server = serve(sse)
    adapter = LeanAdapter(pool_maxsize=4)
    for _ in range(3):  # read to the end: the one connection goes back to the pool
        resp = post(adapter, server.url, stream=True)
        assert b"".join(resp.iter_content(chunk_size=None)) == events
        resp.close()
    assert server.connections == 1
    resp = post(adapter, server.url, stream=True)
    resp.close()  # left before reading: that connection is closed, not reused
    assert post(adapter, server.url).status_code == 200
    assert server.connections == 2
