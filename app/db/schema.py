"""Alembic migrations: upgrade/downgrade, and the "is the schema at head?" check.

The migration scripts live in ``app/migrations`` (inside the package, so an installed gateway
can check and apply them). The database URL always comes from Settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from app.db.engine import build_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# The PostgreSQL advisory lock that serialises upgrades of one database (any fixed 64-bit key;
# this one spells "NRMIGRAT").
MIGRATION_LOCK_KEY = 0x4E524D4947524154


class SchemaNotCurrentError(RuntimeError):
    """The database is not at the migrations' head revision (or cannot be read)."""


class DatabaseUnreachableError(SchemaNotCurrentError):
    """The revision could not be read at all (the database is down or refuses us)."""


def alembic_config(database_url: str) -> Config:
    """An Alembic Config pointing at the package's migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py reads the URL from here; it is never written to a file.
    config.attributes["database_url"] = database_url
    return config


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock (PostgreSQL; SQLite has a single writer anyway).

    Two upgrades of one fresh database at once (replicas migrating as they start, a second
    operator) would both create the same tables and one would fail; with the lock the later
    one waits, then finds the schema at its revision and does nothing.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _migrate(database_url: str, run: Callable[[Config, str], None], revision: str) -> None:
    engine = build_engine(database_url)  # creates the SQLite folder on a fresh machine
    try:
        with migration_lock(engine):
            run(alembic_config(database_url), revision)
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; a no-op when already there (idempotent).

    Safe to run concurrently against one PostgreSQL database (see :func:`migration_lock`).
    """
    _migrate(database_url, command.upgrade, revision)


def downgrade(database_url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base``: an empty database)."""
    _migrate(database_url, command.downgrade, revision)


def head_revision() -> str:
    """The newest revision this release ships."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None for a database never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_head(engine: Engine) -> None:
    """Raise SchemaNotCurrentError unless the database is exactly at the head revision.

    Workers call this before serving: during a rolling upgrade a worker of the new release
    must not run on the old schema (nor an old worker on a newer one it does not know).
    """
    head = head_revision()
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseUnreachableError(
            f"cannot read the schema revision ({type(exc).__name__}); is the database up?"
        ) from None
    if current != head:
        raise SchemaNotCurrentError(
            f"database schema is at revision {current or '(empty)'} but this release needs "
            f"{head}; run `make migrate` (or `flask --app wsgi db upgrade`) first")
