"""Repository functions of the ``responses`` table (stored Responses API answers).

Every read is scoped to an :class:`Owner` and to the retention window (``since``): a response
is visible to the key that created it and, when that key belonged to a team, to the keys of
that team; a response older than the window is invisible even before the purge deletes it.
Whoever cannot see a response gets the same answer as for one that does not exist, so ids
leak nothing. Callers own the transaction (``Database.session()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.db.models import ResponseRow


@dataclass(frozen=True, slots=True)
class Owner:
    """Who asks: a key, and the team it belongs to (None: none)."""

    key_id: str
    team_id: str | None = None


def _visible(row: Any, owner: Owner, since: datetime) -> ColumnElement[bool]:
    mine: ColumnElement[bool] = row.key_id == owner.key_id
    if owner.team_id is not None:
        mine = or_(mine, row.team_id == owner.team_id)
    return and_(mine, row.active_at >= since)


def save(session: Session, *, owner: Owner, data: dict[str, Any], model: str | None,
         now: datetime, chain: Sequence[str] = (), refresh_before: datetime | None = None
         ) -> None:
    """Store a response (``data["id"]``); the responses of its conversation (``chain``, the
    ids it continues) become active ``now`` too, so the conversation is kept as a whole.
    Only those last active before ``refresh_before`` are rewritten: a long conversation in
    use costs an index lookup per turn, not a write of every earlier response."""
    session.add(ResponseRow(id=data["id"], key_id=owner.key_id, team_id=owner.team_id,
                            previous_response_id=data.get("previous_response_id"),
                            model=model, created_at=now, active_at=now, data=data))
    if chain:
        stale = ResponseRow.active_at < (refresh_before or now)
        session.execute(update(ResponseRow).where(ResponseRow.id.in_(list(chain)), stale)
                        .values(active_at=now))


def chain(session: Session, response_id: str, *, owner: Owner, since: datetime,
          limit: int) -> dict[str, dict[str, Any]]:
    """The stored data of ``response_id`` and of the responses it continues, newest first,
    by id, in one query (a recursive CTE, on SQLite and PostgreSQL alike). The walk stops
    at a response the owner cannot see (missing, foreign, expired) or after ``limit``."""
    first = (select(ResponseRow.id, ResponseRow.previous_response_id, ResponseRow.data,
                    literal(1).label("depth"))
             .where(ResponseRow.id == response_id, _visible(ResponseRow, owner, since))
             .cte("chain", recursive=True))
    parent = aliased(ResponseRow)
    walk = first.union_all(
        select(parent.id, parent.previous_response_id, parent.data, first.c.depth + 1)
        .join(first, parent.id == first.c.previous_response_id)
        .where(_visible(parent, owner, since), first.c.depth < limit))
    rows = session.execute(select(walk.c.id, walk.c.data).order_by(walk.c.depth))
    return {row.id: row.data for row in rows}


def get(session: Session, response_id: str, *, owner: Owner,
        since: datetime) -> dict[str, Any] | None:
    """The stored data of one response, or None when the owner cannot see it."""
    data: dict[str, Any] | None = session.scalar(
        select(ResponseRow.data).where(ResponseRow.id == response_id,
                                       _visible(ResponseRow, owner, since)))
    return data


def remove(session: Session, response_id: str, *, owner: Owner, since: datetime) -> bool:
    """Delete one response; False when the owner cannot see it (nothing is deleted)."""
    result = session.execute(delete(ResponseRow).where(
        ResponseRow.id == response_id, _visible(ResponseRow, owner, since)))
    return bool(getattr(result, "rowcount", 0))


def purge(session: Session, *, before: datetime, batch: int) -> int:
    """Delete up to ``batch`` responses inactive since before ``before``; how many."""
    expired = select(ResponseRow.id).where(ResponseRow.active_at < before).limit(batch)
    result = session.execute(delete(ResponseRow).where(ResponseRow.id.in_(expired)))
    return int(getattr(result, "rowcount", 0))
