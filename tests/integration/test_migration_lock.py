"""Concurrent `db upgrade` runs on one PostgreSQL database: serialised by the advisory lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sqlalchemy import Connection, create_engine, inspect, text

from app.db import schema
from tests.procs import ROOT

pytestmark = pytest.mark.integration

UPGRADE = "import sys; from app.db.schema import upgrade; upgrade(sys.argv[1])"


def _waiting_for_lock(conn: Connection, key: int) -> int:
    """Sessions waiting for the migration lock (pg_locks splits a bigint key in two)."""
    row = conn.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid = :hi AND objid = :lo"), {"hi": key >> 32, "lo": key & 0xFFFFFFFF})
    return int(row.scalar_one())


def test_concurrent_upgrades_of_a_fresh_database_wait_for_each_other(pg_url: str) -> None:
    """Two upgrades at once used to fail (both created the tables); now one waits."""
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:key)"),
                           {"key": schema.MIGRATION_LOCK_KEY})
            procs = [subprocess.Popen([sys.executable, "-c", UPGRADE, pg_url], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                     for _ in range(2)]
            deadline = time.monotonic() + 30
            while _waiting_for_lock(holder, schema.MIGRATION_LOCK_KEY) < 2:
                assert time.monotonic() < deadline, "the upgrades never asked for the lock"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.05)
            # Both are blocked on the lock before touching the schema.
            assert "alembic_version" not in inspect(holder).get_table_names()
            holder.execute(text("SELECT pg_advisory_unlock(:key)"),
                           {"key": schema.MIGRATION_LOCK_KEY})
        # Released together: they race for the lock, one migrates, the other finds head.
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
        assert schema.current_revision(engine) == schema.head_revision()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        engine.dispose()
