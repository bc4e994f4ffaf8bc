"""Usage records in the database: the writer's sink, and the queries of /admin/usage."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, insert, select

from app.db.engine import Database
from app.db.models import UsageRow
from app.usage.writer import UsageRecord

_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))


def _row(record: UsageRecord) -> dict[str, Any]:
    # Plain attribute reads: dataclasses.asdict deep-copies and costs several times more, on
    # the same core as the requests.
    row = {name: getattr(record, name) for name in _FIELDS}
    row["created_at"] = datetime.fromtimestamp(record.created_at, UTC)
    return row


class DatabaseUsageSink:
    """Writes a batch in one transaction, in multi-row INSERTs of ``chunk`` rows.

    Between chunks the writer yields (``time.sleep(0)`` is a gevent yield in the workers), so
    turning a large batch into rows never holds the event loop long enough to show in the
    requests' latency.
    """

    def __init__(self, db: Database, *, chunk: int = 100) -> None:
        self.db = db
        self.chunk = chunk

    def write(self, records: Sequence[UsageRecord]) -> None:
        with self.db.session() as session:  # commits on success, rolls back on failure
            for start in range(0, len(records), self.chunk):
                if start:
                    time.sleep(0)
                session.execute(insert(UsageRow),
                                [_row(r) for r in records[start:start + self.chunk]])


GROUPS = {"day": None, "model": UsageRow.model, "key": UsageRow.key_id,
          "user": UsageRow.user_id, "team": UsageRow.team_id,
          "deployment": UsageRow.deployment}


def _filtered(stmt: Select[Any], filters: dict[str, Any]) -> Select[Any]:
    for name, column in (("key_id", UsageRow.key_id), ("user_id", UsageRow.user_id),
                         ("team_id", UsageRow.team_id), ("model", UsageRow.model)):
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
