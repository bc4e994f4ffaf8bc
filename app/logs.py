"""JSON logs to stdout via the stdlib ``logging`` module (one object per line).

Every request writes an access line, so what a line costs is paid per request: records skip
the caller, thread and process-name lookups (a JSON line carries none of them), and the
app's handler writes its lines in batches (:class:`BatchingStreamHandler`).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from typing import IO, Any

import orjson
from gunicorn import glogging

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message and the extra fields."""

    _second = -1
    _stamp = ""

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:  # one strftime per second, not per line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._time(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes its lines in batches: one write (and flush) per
    :attr:`interval` or :attr:`limit` bytes instead of per line. WARNING and above are
    written at once, with everything before them; :meth:`flush` (also at exit) writes all.
    """

    def __init__(self, stream: IO[str], *, interval: float = 0.2, limit: int = 64 * 1024):
        super().__init__(stream)
        self.interval = interval
        self.limit = limit
        self._lines: list[str] = []
        self._size = 0
        self._thread: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own convention for a bad record
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line) + 1
        if self._size >= self.limit or record.levelno >= logging.WARNING:
            self._write()
        elif self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()

    def _write(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)  # cooperative under gevent
            self.flush()


def configure_logging(level: str) -> None:
    """Send the app's logs to stdout as JSON; safe to call more than once.

    Records do not look up the calling frame, thread or multiprocessing names: the JSON
    lines carry none of them, and the frame lookup alone was ~1% of a request's CPU.
    """
    logging._srcfile = None  # logging HOWTO, "Optimization"
    logging.logThreads = False
    logging.logMultiprocessing = False
    logger = logging.getLogger("app")
    logger.setLevel(level)
    if not any(getattr(h, "_neuroroute", False) for h in logger.handlers):
        handler = BatchingStreamHandler(sys.stdout)
        atexit.register(handler.flush)
        handler.setFormatter(JsonFormatter())
        handler._neuroroute = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """Gunicorn's logger, minus the access-line work when ``gunicorn.access`` logs nothing.

    Gunicorn builds its access-log atoms (a dict of ~30 entries per request, ~4% of a relayed
    request's CPU) whenever any logging config is given, then drops the line at the logger's
    level. The app writes its own access line, so ``gunicorn.conf.py`` silences that logger;
    this skips building the atoms too. A config that enables ``gunicorn.access`` still gets it.
    """

    @property
    def access_log_enabled(self) -> bool:
        return bool(super().access_log_enabled) and self.access_log.isEnabledFor(logging.INFO)
