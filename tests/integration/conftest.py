"""Real PostgreSQL (and Redis) for integration tests; PostgreSQL isolated by a schema per test.

Where the services are: ``NEUROROUTE_TEST_POSTGRES_URL`` (default: the local trust-auth
server, database ``test``) and ``NEUROROUTE_TEST_REDIS_URL`` (default: local, db 0).
Missing service: a FAILURE when ``CI=true`` (CI must prove these paths), a skip with the
reason otherwise. That decision lives in :func:`require_service` only.

Other suites may use the same server at the same time, so each test gets its own schema with
a random name (``search_path`` is set through the connection URL, so the app, Alembic and the
test all land in it) and the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.services import require_service

POSTGRES_URL = os.environ.get("NEUROROUTE_TEST_POSTGRES_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NEUROROUTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _probe_postgres() -> None:
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _probe_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis for the pub/sub tests (they only publish/subscribe: no keys to clean up)."""
    require_service("Redis", _probe_redis)
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require_service("PostgreSQL", _probe_postgres)
    return POSTGRES_URL


@pytest.fixture
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh, empty schema, dropped after the test."""
    schema = f"nr_test_{secrets.token_hex(6)}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_admin_url).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
