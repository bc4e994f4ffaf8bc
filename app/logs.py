"""JSON logs to stdout via the stdlib ``logging`` module (one object per line)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson
from gunicorn import glogging

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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


def configure_logging(level: str) -> None:
    """Send the app's logs to stdout as JSON; safe to call more than once."""
    logger = logging.getLogger("app")
    logger.setLevel(level)
    if not any(getattr(h, "_neuroroute", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
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
