"""app.gevent_sendall: the same bytes arrive, in order, for small, large and partial sends."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
from gevent import socket as gsocket

from app.gevent_sendall import patch_gevent_sendall


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gsocket.socket, "sendall", gsocket.socket.sendall)  # restored after
    assert patch_gevent_sendall()
    assert patch_gevent_sendall()  # idempotent
    assert getattr(gsocket.socket.sendall, "_neuroroute_fast", False)


def _roundtrip(payloads: list[Any], timeout: float | None = None) -> bytes:
    a, b = gsocket.socketpair()
    a.settimeout(timeout)
    expected = sum(len(p) for p in payloads)

    def read() -> bytes:
        got = bytearray()
        while len(got) < expected:
            chunk = b.recv(65536)
            assert chunk
            got += chunk
        return bytes(got)

    reader = gevent.spawn(read)
    try:
        for p in payloads:
            a.sendall(p)
        return bytes(reader.get(timeout=10))
    finally:
        a.close()
        b.close()


@pytest.mark.usefixtures("patched")
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_bytes_arrive_intact(timeout: float | None) -> None:
    # Larger than the socket buffer (partial sends, waits for writability) and above 1 MiB
    # (gevent's own path), small SSE-sized writes, an empty one and a non-bytes buffer.
    big = bytes(range(256)) * 5000
    payloads: list[Any] = [b"data: {}\n\n", big[:700_000], b"", big, bytearray(b"xyz"),
                           memoryview(b"tail")]
    assert _roundtrip(payloads, timeout) == b"".join(bytes(p) for p in payloads)
