"""Usage records in the database: the writer's sinks, and the queries of /admin/usage.

A sink turns a batch of records into rows at the lowest cost per record that the backend
allows, because that work shares a core with the requests (``bench/usage_overhead.py``
measures it against recording off):

- PostgreSQL: the batch travels as one JSON document in one parameter and the server
  unpacks it (``json_to_recordset``). Passing every field as its own parameter costs about
  1-3 us per value in psycopg2's adaptation, 80-160 us per record through SQLAlchemy; JSON
  encoding runs in C (``bench/usage_sinks.py`` compares them). COPY would be cheaper still,
  but psycopg2 refuses it in green mode (psycogreen), and green mode is what keeps a query
  from blocking the gevent worker.
- SQLite: ``executemany`` on a connection of the sink's own, 100 rows per transaction with
  a yield to the requests between two (an SQLite write blocks: it has no socket to yield on).
- Anything else: a Core multi-row INSERT.

Each sink also says which errors mean "this data is refused" rather than "the database is
unreachable": the writer retries the second kind and isolates the bad record of the first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import Select, func, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql

from app.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from app.db.models import UsageRow
from app.usage.writer import UsageRecord, UsageSink

FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))
_values = attrgetter(*FIELDS)  # one C call: the record's fields as a tuple, in column order
_CREATED_AT = FIELDS.index("created_at")
_COLUMNS = UsageRow.__table__.columns
assert set(FIELDS) <= set(_COLUMNS.keys()), "every UsageRecord field is a usage_records column"

CHUNK = 100  # records converted between two yields to the event loop
T = TypeVar("T")


def _row(record: UsageRecord) -> dict[str, Any]:
    row = dict(zip(FIELDS, _values(record), strict=True))
    row["created_at"] = datetime.fromtimestamp(record.created_at, UTC)
    return row


class DatabaseUsageSink:
    """Any SQLAlchemy backend: one transaction of Core multi-row INSERTs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, records: Sequence[UsageRecord]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(UsageRow), [_row(r) for r in records])

    def rejects(self, exc: BaseException) -> bool:
        return isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError))


def _pg_type(name: str) -> str:
    if name == "created_at":
        return "float8"  # epoch seconds; to_timestamp() on the server
    return str(_COLUMNS[name].type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


_PG_INSERT = (
    f"INSERT INTO usage_records ({', '.join(FIELDS)}) "
    f"SELECT {', '.join('to_timestamp(created_at)' if n == 'created_at' else n for n in FIELDS)}"
    f" FROM json_to_recordset(%s) AS r({', '.join(f'{n} {_pg_type(n)}' for n in FIELDS)})")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _pg_clean(value: Any) -> Any:
    """What PostgreSQL can store: no NUL in text, no NaN or infinity in JSON numbers."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class PostgresUsageSink(DatabaseUsageSink):
    """PostgreSQL: one INSERT ... SELECT FROM json_to_recordset per batch."""

    @staticmethod
    def _encode_chunk(records: Sequence[UsageRecord]) -> str:
        """The records as JSON objects separated by commas (no brackets)."""
        text = _encode([dict(zip(FIELDS, _values(r), strict=True)) for r in records])
        if "\\u0000" in text or "NaN" in text or "Infinity" in text:
            # Rare (a NUL in a client-chosen string, a non-finite number): clean field by field.
            text = _encode([{n: _pg_clean(v) for n, v in zip(FIELDS, _values(r), strict=True)}
                            for r in records])
        return text[1:-1]

    @classmethod
    def payload(cls, records: Sequence[UsageRecord]) -> str:
        """The batch as one JSON array, encoded a chunk at a time (see ``_chunks``)."""
        return "[" + ",".join(_chunks(records, cls._encode_chunk)) + "]"

    def write(self, records: Sequence[UsageRecord]) -> None:
        payload = self.payload(records)
        with self.db.engine.begin() as conn:
            conn.exec_driver_sql(_PG_INSERT, (payload,))


def _chunks(records: Sequence[UsageRecord],
            convert: Callable[[Sequence[UsageRecord]], T]) -> list[T]:
    """``convert`` applied to the records :data:`CHUNK` at a time, yielding between chunks.

    ``time.sleep(0)`` is a gevent yield in a worker: a large batch never holds the event loop
    for more than one chunk's worth of work (100 records: about a millisecond).
    """
    out = []
    for start in range(0, len(records), CHUNK):
        if start:
            time.sleep(0)
        out.append(convert(records[start:start + CHUNK]))
    return out


_SQLITE_INSERT = (f"INSERT INTO usage_records ({', '.join(FIELDS)}) "
                  f"VALUES ({', '.join('?' * len(FIELDS))})")
# How SQLAlchemy stores a DateTime in SQLite; the queries of /admin/usage compare against it.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


class SqliteUsageSink:
    """An SQLite file: executemany on the sink's own connection, CHUNK rows per transaction.

    SQLite blocks (there is no socket to yield on), so the writer hands this sink at most
    ``max_batch`` records at a time and yields to the requests between two calls: the event
    loop is never held for more than one chunk (100 rows: ~2 ms). Not in a native thread:
    while the worker is busy, such a thread waits up to the GIL switch interval (5 ms) for
    every row of executemany (measured: 500 rows took 2.6 s beside a busy loop, 15 ms
    beside an idle one), and the writer would fall behind exactly under load.
    """

    max_batch = CHUNK

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # check_same_thread off: the writer loop and the shutdown flush may run on
            # different threads outside gevent; the writer's lock keeps them apart.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def write(self, records: Sequence[UsageRecord]) -> None:
        rows = []
        for record in records:
            row = list(_values(record))
            row[_CREATED_AT] = datetime.fromtimestamp(row[_CREATED_AT], UTC).strftime(
                _SQLITE_TIME)
            rows.append(row)
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_SQLITE_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def rejects(self, exc: BaseException) -> bool:
        return isinstance(exc, (sqlite3.DataError, sqlite3.IntegrityError))


def usage_sink(db: Database) -> UsageSink:
    """The cheapest sink for the database's backend."""
    url = db.engine.url
    backend = url.get_backend_name()
    if backend == "postgresql" and url.get_driver_name() == "psycopg2":
        return PostgresUsageSink(db)
    if backend == "sqlite" and url.database and url.database != ":memory:":
        return SqliteUsageSink(url.database)
    return DatabaseUsageSink(db)


GROUPS = {"day": None, "model": UsageRow.model, "key": UsageRow.key_id,
          "user": UsageRow.user_id, "team": UsageRow.team_id,
          "deployment": UsageRow.deployment}


def _filtered(stmt: Select[Any], filters: dict[str, Any]) -> Select[Any]:
    for name, column in (("key_id", UsageRow.key_id), ("user_id", UsageRow.user_id),
                         ("team_id", UsageRow.team_id), ("model", UsageRow.model),
                         ("deployment", UsageRow.deployment)):
        if filters.get(name) is not None:
            stmt = stmt.where(column == filters[name])
    if filters.get("start") is not None:
        stmt = stmt.where(UsageRow.created_at >= filters["start"])
    if filters.get("end") is not None:
        stmt = stmt.where(UsageRow.created_at < filters["end"])
    return stmt


def _aggregates() -> list[Any]:
    return [func.count(UsageRow.id).label("requests"),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(UsageRow.total_tokens), 0).label("total_tokens"),
            func.coalesce(func.sum(UsageRow.cost), 0.0).label("cost"),
            func.coalesce(func.sum(func.cast(UsageRow.status >= 400, UsageRow.id.type)),
                          0).label("errors"),
            func.coalesce(func.sum(func.cast(UsageRow.cache_hit, UsageRow.id.type)),
                          0).label("cache_hits")]


def _totals(row: Any) -> dict[str, Any]:
    return {"requests": int(row.requests), "prompt_tokens": int(row.prompt_tokens),
            "completion_tokens": int(row.completion_tokens),
            "total_tokens": int(row.total_tokens), "cost": float(row.cost),
            "errors": int(row.errors), "cache_hits": int(row.cache_hits)}


def usage_report(db: Database, *, group_by: str | None, **filters: Any) -> dict[str, Any]:
    """Totals over the filtered records, and per group when ``group_by`` is given."""
    with db.session() as session:
        totals = session.execute(_filtered(select(*_aggregates()), filters)).one()
        report: dict[str, Any] = {"object": "usage_report", "group_by": group_by,
                                  "totals": _totals(totals), "groups": []}
        if group_by is None:
            return report
        if group_by == "day":
            column: Any = func.date(UsageRow.created_at)
        else:
            column = GROUPS[group_by]
        stmt = _filtered(select(column.label("group"), *_aggregates()), filters)
        for row in session.execute(stmt.group_by(column).order_by(column)):
            group = row.group
            report["groups"].append({"group": str(group) if group is not None else None,
                                     **_totals(row)})
    return report


def spend_since(db: Database, *, kind: str, entity_id: str, since: datetime | None) -> float:
    """USD spent by a key, user or team since ``since`` (all time when None)."""
    column = {"key": UsageRow.key_id, "user": UsageRow.user_id, "team": UsageRow.team_id}[kind]
    stmt = select(func.coalesce(func.sum(UsageRow.cost), 0.0)).where(column == entity_id)
    if since is not None:
        stmt = stmt.where(UsageRow.created_at >= since)
    with db.session() as session:
        return float(session.execute(stmt).scalar_one())


def spend_by_key(db: Database, key_ids: Sequence[str],
                 since_of: dict[str, datetime | None]) -> dict[str, float]:
    """Current-period spend of each key (one query per distinct period start)."""
    out = {key_id: 0.0 for key_id in key_ids}
    by_since: dict[datetime | None, list[str]] = {}
    for key_id in key_ids:
        by_since.setdefault(since_of.get(key_id), []).append(key_id)
    with db.session() as session:
        for since, ids in by_since.items():
            stmt = select(UsageRow.key_id, func.sum(UsageRow.cost)).where(
                UsageRow.key_id.in_(ids)).group_by(UsageRow.key_id)
            if since is not None:
                stmt = stmt.where(UsageRow.created_at >= since)
            for row_key, cost in session.execute(stmt):
                if row_key is not None:
                    out[row_key] = float(cost or 0.0)
    return out


def entity_budget(db: Database, kind: str, entity_id: str) -> tuple[float | None, str | None]:
    """(max_budget, budget_period) of a user or team."""
    from app.db.models import Team, User

    with db.session() as session:
        row = session.get(User, entity_id) if kind == "user" else session.get(Team, entity_id)
        return (None, None) if row is None else (row.max_budget, row.budget_period)
