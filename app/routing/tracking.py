"""A stream's events that report the stream's end exactly once (for the routing state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from app.providers.base import ChatStream


class TrackedEvents:
    """A stream's events that report the stream's end exactly once.

    A class rather than a generator: closing a generator that never started skips its
    ``finally``, and a client may go away before the first event is written.
    """

    __slots__ = ("_inner", "_stream", "_on_end", "_done")

    def __init__(self, inner: Iterator[bytes], stream: ChatStream,
                 on_end: Callable[[bool], None]) -> None:
        self._inner = inner
        self._stream = stream
        self._on_end = on_end
        self._done = False

    def __iter__(self) -> TrackedEvents:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._inner)
        except StopIteration:
            self._finish(upstream_failed=not self._stream.completed)
            raise
        except BaseException:
            self._finish(upstream_failed=True)
            raise

    def close(self) -> None:
        """The client is gone (or the response is done): release the upstream at once."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
        self._finish(upstream_failed=False)

    def _finish(self, *, upstream_failed: bool) -> None:
        if not self._done:
            self._done = True
            self._on_end(upstream_failed)
