"""The engine and session factory, built once per process from Settings.

Under Gunicorn each worker builds its own (``create_app`` runs after the fork), so no
connection is ever shared between processes. PostgreSQL connections yield to the gevent hub
because ``gunicorn.conf.py`` applies psycogreen in each worker before the app is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings

# A worker waits at most this long (seconds) for PostgreSQL to accept a connection, so a
# database outage degrades requests quickly instead of hanging them.
PG_CONNECT_TIMEOUT = 3
# SQLite: wait this long (ms) for another worker's write lock instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the workers read while one of them writes; busy_timeout queues the writers.
    # synchronous=NORMAL is WAL's usual pairing: no fsync per commit, and a commit survives a
    # crash of the process (only a power loss can take the last commits back).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10,
                 pool_timeout: float = 5.0) -> Engine:
    """An engine with a bounded pool (PostgreSQL) or per-file settings (SQLite).

    For a SQLite file URL the parent folder is created, so a fresh checkout just works.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        # A connection the server closed (restart, idle timeout) is replaced, not handed out.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT},
    )


class Database:
    """The process's engine plus a session factory; ``session()`` is a unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._factory = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The engine and pool sizes from Settings."""
        return cls(build_engine(settings.database_url, pool_size=settings.db_pool_size,
                                max_overflow=settings.db_max_overflow,
                                pool_timeout=settings.db_pool_timeout))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception."""
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
