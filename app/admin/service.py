"""Admin operations, each in one transaction: the repository audits it and bumps the sync
counters; after the commit the change is announced (this worker re-syncs at once, the others
are told through Redis or notice at their next poll, see ``app.sync``).

The same operations serve every entity; an :class:`Entity` names its repository functions,
so the HTTP layer needs one pair of views for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import repo
from app.db.engine import Database
from app.db.models import ApiKey
from app.schemas.admin import DeploymentCreateSchema
from app.schemas.common import invalid_request
from app.usage.budgets import period_start
from app.usage.store import spend_by_key, usage_report


@dataclass(frozen=True, slots=True)
class KeyView:
    """A key as the API shows it: its row, the spend of its current budget period and, once
    (creation, rotation), the key itself."""

    row: ApiKey
    spend: float | None
    key: str | None = None

    def __getattr__(self, name: str) -> Any:  # the row's columns, for the response schema
        return getattr(self.row, name)


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of an entity list, ready for the list schema."""

    data: Sequence[Any]
    has_more: bool

    @property
    def first_id(self) -> Any:
        return self.data[0].id if self.data else None

    @property
    def last_id(self) -> Any:
        return self.data[-1].id if self.data else None


@dataclass(frozen=True, slots=True)
class Entity:
    """One admin entity: its label and repository functions (``delete`` None: not deletable)."""

    label: str
    create: Callable[..., Any]
    get: Callable[[Session, str], Any]
    list: Callable[..., repo.Page]
    update: Callable[..., Any]
    delete: Callable[..., None] | None = None


USERS = Entity("user", repo.create_user, repo.get_user, repo.list_users, repo.update_user,
               repo.delete_user)
TEAMS = Entity("team", repo.create_team, repo.get_team, repo.list_teams, repo.update_team,
               repo.delete_team)
KEYS = Entity("api_key", repo.create_key, repo.get_key, repo.list_keys, repo.update_key)


class AdminService:
    """Admin reads and changes over one database; ``announce`` runs after each commit."""

    def __init__(self, *, db: Database, announce: Callable[[], None],
                 yaml_deployment_ids: frozenset[str]) -> None:
        self._db = db
        self._announce = announce
        self._yaml_ids = yaml_deployment_ids
        deployments = Entity("deployment", self._create_deployment, repo.get_deployment,
                             repo.list_deployments, self._update_deployment,
                             repo.delete_deployment)
        self._entities = {e.label: e for e in (KEYS, USERS, TEAMS, deployments)}

    @contextmanager
    def _change(self) -> Iterator[Session]:
        with self._db.session() as session:
            yield session
        self._announce()

    # -- any entity --------------------------------------------------------------------

    def create(self, label: str, fields: Mapping[str, Any], *, actor: str) -> Any:
        """Create one; raises 400 (bad reference) or 409 (duplicate) from the repository."""
        entity = self._entities[label]
        with self._change() as session:
            return self._present(entity, session, entity.create(session, actor=actor,
                                                                fields=fields))

    def get(self, label: str, entity_id: str) -> Any:
        """One by id (404 if unknown)."""
        entity = self._entities[label]
        with self._db.session() as session:
            return self._present(entity, session, entity.get(session, entity_id))

    def page(self, label: str, query: Mapping[str, Any]) -> Listing:
        """A page of ``limit`` items after the cursor ``after``, filtered by ``query``."""
        entity = self._entities[label]
        with self._db.session() as session:
            page = entity.list(session, **query)
            items = (self._keys(session, list(page.items)) if entity is KEYS
                     else list(page.items))
        return Listing(items, page.has_more)

    def update(self, label: str, entity_id: str, changes: Mapping[str, Any], *,
               actor: str) -> Any:
        """Change the fields sent (404 unknown, 409 conflict)."""
        entity = self._entities[label]
        with self._change() as session:
            return self._present(entity, session, entity.update(
                session, entity_id, actor=actor, changes=changes))

    def delete(self, label: str, entity_id: str, *, actor: str) -> None:
        """Delete one (404 unknown, 409 when still in use)."""
        entity = self._entities[label]
        assert entity.delete is not None
        with self._change() as session:
            entity.delete(session, entity_id, actor=actor)

    def audit(self, query: Mapping[str, Any]) -> Listing:
        """A page of the audit log, in the order it was written."""
        with self._db.session() as session:
            page = repo.list_audit(session, **query)
        return Listing(list(page.items), page.has_more)

    def usage(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """Usage totals (requests, tokens, cost, errors, cache hits), optionally grouped."""
        filters = dict(query)
        return usage_report(self._db, group_by=filters.pop("group_by", None), **filters)

    # -- keys ----------------------------------------------------------------------------

    def revoke_key(self, key_id: str, *, actor: str) -> KeyView:
        """Revoke for good (idempotent)."""
        with self._change() as session:
            return self._keys(session, [repo.revoke_key(session, key_id, actor=actor)])[0]

    def rotate_key(self, key_id: str, *, actor: str) -> KeyView:
        """New secret material, same id and settings (409 when revoked)."""
        with self._change() as session:
            view: KeyView = self._present(KEYS, session,
                                          repo.rotate_key(session, key_id, actor=actor))
            return view

    def _present(self, entity: Entity, session: Session, result: Any) -> Any:
        if entity is not KEYS:
            return result
        row, plaintext = result if isinstance(result, tuple) else (result, None)
        view = self._keys(session, [row])[0]
        return KeyView(view.row, view.spend, plaintext)

    def _keys(self, session: Session, keys: list[ApiKey]) -> list[KeyView]:
        """Keys with the spend of their current budget period (one query per page)."""
        session.flush()  # ids of keys created in this transaction
        now = datetime.now(UTC)
        try:
            spend = spend_by_key(self._db, [k.id for k in keys],
                                 {k.id: period_start(k.budget_period, now) for k in keys})
        except SQLAlchemyError:  # the usage table is unreachable: say so, do not fail
            spend = {}
        return [KeyView(key, spend.get(key.id)) for key in keys]

    # -- deployments -------------------------------------------------------------------

    def _create_deployment(self, session: Session, *, actor: str,
                           fields: Mapping[str, Any]) -> Any:
        return repo.create_deployment(session, actor=actor, fields=fields,
                                      reserved_ids=self._yaml_ids)

    def _update_deployment(self, session: Session, dep_id: str, *, actor: str,
                           changes: Mapping[str, Any]) -> Any:
        """Merge the changes into the stored entry (``None`` removes a field) and validate
        the result as a whole, like a new deployment (and the YAML file): no combination of
        edits can store an entry that creation would refuse."""
        merged = repo.deployment_entry(repo.get_deployment(session, dep_id))
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        try:
            fields = DeploymentCreateSchema().load({**merged, "id": dep_id})
        except ValidationError as exc:
            raise invalid_request(exc.messages) from None
        return repo.update_deployment(session, dep_id, actor=actor, fields=fields)
