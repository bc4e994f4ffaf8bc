"""Alembic on SQLite: upgrade from empty, round trip, the models match, the head check."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.db import schema
from app.db.engine import build_engine
from app.db.models import Base

TABLES = {"users", "teams", "api_keys", "deployments", "audit_log", "sync_versions",
          "usage_records", "responses", "alembic_version"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sub' / 'fresh.db'}"  # the folder is created on demand


def test_upgrade_from_empty_then_idempotent(url: str) -> None:
    schema.upgrade(url)
    schema.upgrade(url)  # a second run (make run after make run) changes nothing
    engine = build_engine(url)
    assert set(inspect(engine).get_table_names()) == TABLES
    assert schema.current_revision(engine) == schema.head_revision()
    schema.require_head(engine)


def test_downgrade_upgrade_round_trip(url: str) -> None:
    schema.upgrade(url)
    schema.downgrade(url, "base")
    engine = build_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert schema.current_revision(engine) is None
    schema.upgrade(url)
    assert set(inspect(engine).get_table_names()) == TABLES


def test_migrations_match_the_models(url: str) -> None:
    schema.upgrade(url)
    with build_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_workers_refuse_a_database_not_at_head(url: str) -> None:
    engine = build_engine(url)
    with pytest.raises(schema.SchemaNotCurrentError, match="make migrate"):
        schema.require_head(engine)
    schema.upgrade(url)
    schema.require_head(engine)


def test_unreadable_database_is_reported_not_raised_raw(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    with pytest.raises(schema.DatabaseUnreachableError, match="database up"):
        schema.require_head(create_engine(f"sqlite:///{tmp_path}"))  # a directory
