"""A cheaper ``sendall`` for gevent sockets: no ``getsockopt`` syscall per call.

gevent's ``socket.sendall`` asks the kernel for ``SO_SNDBUF`` on *every* call, only to pick a
chunk size of ``max(SO_SNDBUF, 1 MiB)``; data up to 1 MiB is therefore always sent as one
chunk, and the answer is never needed. A streamed response writes once per SSE event, so this
syscall was the largest single frame of the 500-stream profile. For a blocking-mode socket
(timeout ``None``, as Gunicorn's gevent worker uses) and bytes up to 1 MiB, the replacement
does what gevent's chunk loop does (``send`` until everything is out; gevent's ``send`` waits
for writability on EAGAIN), and hands every other case to gevent's own ``sendall``.
"""

from __future__ import annotations

from typing import Any

_ONE_CHUNK = 1024 * 1024  # gevent's minimum chunk size: below it sendall is a single chunk


def patch_gevent_sendall() -> bool:
    """Install the cheaper ``sendall`` on gevent's socket class (idempotent); True if installed."""
    from gevent import socket as gsocket

    cls: Any = gsocket.socket
    original = cls.sendall
    if getattr(original, "_neuroroute_fast", False):
        return True

    def sendall(self: Any, data: Any, flags: int = 0) -> Any:
        if self.timeout is not None or type(data) is not bytes or not 0 < len(data) <= _ONE_CHUNK:
            return original(self, data, flags)
        sent = self.send(data, flags)
        if sent < len(data):
            view = memoryview(data)
            while sent < len(data):
                sent += self.send(view[sent:], flags)
        return None

    sendall._neuroroute_fast = True  # type: ignore[attr-defined]
    sendall.__doc__ = original.__doc__
    cls.sendall = sendall
    return True
