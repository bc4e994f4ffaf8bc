"""The usage sinks on both real backends: every field survives the trip exactly, the queries
of /admin/usage read what they wrote, and a record the database refuses is isolated and
dropped without losing or duplicating the rest of its batch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.engine import Database, build_engine
from app.db.models import UsageRow
from app.db.schema import upgrade
from app.usage import store
from app.usage.writer import REJECTED, UsageRecord, UsageSink, UsageWriter


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'usage.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    database = Database(build_engine(url))
    yield database
    database.dispose()


def record(request_id: str, **fields: object) -> UsageRecord:
    values: dict[str, object] = dict(
        request_id=request_id, created_at=time.time(), key_id="key_1", user_id=None,
        team_id="team_1", model="gpt-4o-mini", deployment="gpt-4o-mini-0", provider="openai",
        prompt_tokens=11, completion_tokens=22, total_tokens=33, cached_tokens=4,
        estimated=False, cost=0.000123456789, price_known=True, latency_ms=1.234,
        ttft_ms=None, status=200, error_code=None, stream=False, cache_hit=False,
        cancelled=False, attempts=1, route=None)
    values.update(fields)
    return UsageRecord(**values)  # type: ignore[arg-type]


def rows(db: Database) -> list[UsageRow]:
    with db.session() as session:
        return list(session.scalars(select(UsageRow).order_by(UsageRow.id)))


def test_the_backend_gets_its_own_fast_sink(db: Database) -> None:
    sink = store.usage_sink(db)
    expected = (store.SqliteUsageSink if db.engine.dialect.name == "sqlite"
                else store.PostgresUsageSink)
    assert type(sink) is expected


def test_every_field_round_trips_exactly(db: Database) -> None:
    created = datetime(2026, 11, 23, 4, 5, 6, 789012, tzinfo=UTC).timestamp()
    odd = "tab\there, newline\nhere, quote \" and \\ backslash, ünïcödé, {json: [1]}, NaN"
    records = [
        record("r-plain", created_at=created),
        record("r-odd", created_at=created + 1, user_id="", model=odd, error_code="e" * 64,
               route="auto:small", ttft_ms=12.5, attempts=None, estimated=True,
               price_known=False, stream=True, cache_hit=True, cancelled=True, status=499,
               cost=0.0, prompt_tokens=2**31 - 1),
    ]
    store.usage_sink(db).write(records)
    got = rows(db)
    assert len(got) == 2
    for row, rec in zip(got, records, strict=True):
        for name in store.FIELDS:
            value = getattr(row, name)
            if name == "created_at":
                assert isinstance(value, datetime) and value.tzinfo is not None
                assert abs(value.timestamp() - rec.created_at) < 2e-6
            elif isinstance(value, float):
                assert math.isclose(value, getattr(rec, name), rel_tol=1e-12), name
            else:
                assert value == getattr(rec, name), name
    assert got[1].user_id == "" and got[0].user_id is None  # empty string is not NULL


def test_admin_queries_read_what_the_sink_wrote(db: Database) -> None:
    now = time.time()
    store.usage_sink(db).write([record("a", created_at=now - 86400 * 2),
                                record("b", created_at=now, cost=1.5),
                                record("c", created_at=now, model="other", cost=2.5)])
    since = datetime.fromtimestamp(now - 60, UTC)
    report = store.usage_report(db, group_by="model", start=since,
                                end=since + timedelta(hours=1))
    assert report["totals"]["requests"] == 2
    assert report["totals"]["cost"] == pytest.approx(4.0)
    assert [g["group"] for g in report["groups"]] == ["gpt-4o-mini", "other"]
    days = store.usage_report(db, group_by="day")["groups"]
    assert [g["requests"] for g in days] == [1, 2]
    assert store.spend_since(db, kind="team", entity_id="team_1", since=since) == (
        pytest.approx(4.0))


def test_a_nul_in_a_client_string_is_stored_not_refused(db: Database) -> None:
    store.usage_sink(db).write([record("nul", model="bad\x00model")])
    (row,) = rows(db)
    # PostgreSQL text cannot hold NUL: it becomes U+FFFD there; SQLite keeps it.
    assert row.model in ("bad\x00model", "bad\ufffdmodel")


def test_a_refused_record_is_dropped_alone_and_the_batch_is_written(db: Database) -> None:
    sink: UsageSink = store.usage_sink(db)
    writer = UsageWriter(sink, batch_size=100)
    before = REJECTED._value.get()
    # 2**31 does not fit the INTEGER column on PostgreSQL; SQLite refuses a NOT NULL column
    # left empty. Either way the database refuses this one record's data.
    bad = record("bad", prompt_tokens=2**31) if db.engine.dialect.name != "sqlite" else (
        record("bad", status=None))
    for i in range(7):
        writer.put(record(f"ok-{i}"))
    writer.put(bad)
    for i in range(7, 12):
        writer.put(record(f"ok-{i}"))
    assert writer.write_pending() is True
    assert [r.request_id for r in rows(db)] == [f"ok-{i}" for i in range(12)]
    assert REJECTED._value.get() == before + 1
    assert len(writer) == 0 and writer.healthy


def test_a_batch_larger_than_a_chunk_is_written_whole_and_in_order(db: Database) -> None:
    records = [record(f"big-{i:04d}", prompt_tokens=i) for i in range(store.CHUNK * 2 + 37)]
    store.usage_sink(db).write(records)
    got = rows(db)
    assert [r.request_id for r in got] == [r.request_id for r in records]
    assert sum(r.prompt_tokens for r in got) == sum(range(len(records)))
