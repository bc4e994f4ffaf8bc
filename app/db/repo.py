"""Repository functions: every query the gateway makes, each taking a :class:`Session`.

Admin changes go through here so that each one, in the same transaction, (1) writes an audit
entry without secrets and (2) bumps the sync counter the workers poll. Callers own the
transaction (``Database.session()``), so a failed request leaves nothing half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.keys import KeyRecord, generate_key, hash_key, visible_prefix
from app.db.models import (
    ApiKey,
    AuditEntry,
    Base,
    DeploymentRow,
    SyncVersion,
    Team,
    User,
    new_id,
    utcnow,
)
from app.errors import ConflictError, InvalidRequestError, NotFoundError
from app.settings import ConfigError, Deployment, build_deployment

KEYS = "keys"
DEPLOYMENTS = "deployments"
# Columns that never leave the database through the audit log or the admin API.
log = logging.getLogger(__name__)
_AUDIT_EXCLUDE = {"key_hash", "api_key", "headers"}
# Columns of the deployments table; every other models: field lives in DeploymentRow.options.
DEPLOYMENT_COLUMNS = frozenset({"id", "name", "provider", "model", "api_base", "api_key",
                                "headers", "weight", "connect_timeout", "read_timeout", "mock"})


def redact_options(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A deployment's options with write-only secrets replaced (for the API and the audit)."""
    if options is None:
        return None
    out = dict(options)
    auth = out.get("auth")
    if isinstance(auth, dict) and "client_secret" in auth:
        out["auth"] = {**auth, "client_secret": "<redacted>"}
    return out

M = TypeVar("M", bound=Base)


# -- sync counters -------------------------------------------------------------------------


def read_versions(session: Session) -> dict[str, int]:
    """The current value of every sync counter (one small query)."""
    return {row.name: row.version for row in session.scalars(select(SyncVersion))}


def bump(session: Session, name: str) -> None:
    """Increment a sync counter; an atomic UPDATE, so concurrent admins never lose a bump."""
    result = session.execute(update(SyncVersion).where(SyncVersion.name == name)
                             .values(version=SyncVersion.version + 1))
    if getattr(result, "rowcount", 1) == 0:  # a database initialised outside the migrations
        session.add(SyncVersion(name=name, version=1))


# -- audit log -----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def snapshot(obj: Base) -> dict[str, Any]:
    """The entity's columns as JSON, secrets replaced by whether they are set."""
    out: dict[str, Any] = {}
    for attr in inspect(obj).mapper.column_attrs:
        value = getattr(obj, attr.key)
        if attr.key == "key_hash":
            continue
        if attr.key == "options":
            out[attr.key] = redact_options(value)
            continue
        if attr.key in _AUDIT_EXCLUDE:
            out[attr.key] = ("<set>" if value else None) if attr.key == "api_key" \
                else sorted(value or {})
            continue
        out[attr.key] = _jsonable(value)
    return out


def audit(session: Session, *, actor: str, action: str, entity: str, entity_id: str,
          before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Add one audit entry (in the caller's transaction)."""
    session.add(AuditEntry(actor=actor, action=action, entity=entity, entity_id=entity_id,
                           before=before, after=after))


# -- pagination ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the items and whether more follow."""

    items: Sequence[Any]
    has_more: bool


def paginate(session: Session, stmt: Select[Any], id_column: Any, *, limit: int,
             after: Any = None) -> Page:
    """Cursor pagination by id (ids are creation-ordered): items after ``after``, ``limit`` max."""
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(session.scalars(stmt.order_by(id_column).limit(limit + 1)))
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def _get(session: Session, model: type[M], entity_id: str, label: str) -> M:
    obj = session.get(model, entity_id)
    if obj is None:
        raise NotFoundError(f"No {label} with id '{entity_id}'.", code=f"{label}_not_found")
    return obj


def _flush_unique(session: Session, message: str, param: str) -> None:
    """Flush, turning a unique-constraint race into the same 409 the pre-check gives."""
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(message, param=param) from None


def _check_refs(session: Session, fields: Mapping[str, Any]) -> None:
    """400 naming the field when a referenced user or team does not exist."""
    for param, model in (("user_id", User), ("team_id", Team)):
        ref = fields.get(param)
        if ref is not None and session.get(model, ref) is None:
            raise InvalidRequestError(f"Invalid value for '{param}': no such "
                                      f"{'user' if model is User else 'team'} '{ref}'.",
                                      param=param, code="invalid_value")


def _apply(obj: Base, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        setattr(obj, name, value)


# -- API keys ------------------------------------------------------------------------------


def key_record(key: ApiKey) -> KeyRecord:
    """An immutable copy of the key's row, as authentication caches it."""
    return KeyRecord(
        id=key.id, role=key.role,
        allowed_models=None if key.allowed_models is None else frozenset(key.allowed_models),
        user_id=key.user_id, team_id=key.team_id, rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit, max_budget=key.max_budget, budget_period=key.budget_period,
        expires_at=key.expires_at, revoked=key.revoked, disabled=key.disabled)


def find_key_record(session: Session, digest: str) -> KeyRecord | None:
    """The key with this SHA-256, as an immutable record (None when unknown)."""
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    return None if key is None else key_record(key)


def create_key(session: Session, *, actor: str, fields: Mapping[str, Any]) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext key (to show once, never stored)."""
    _check_refs(session, fields)
    plaintext = generate_key()
    key = ApiKey(key_hash=hash_key(plaintext), prefix=visible_prefix(plaintext), **fields)
    session.add(key)
    session.flush()
    audit(session, actor=actor, action="create", entity="api_key", entity_id=key.id,
          before=None, after=snapshot(key))
    bump(session, KEYS)
    return key, plaintext


def get_key(session: Session, key_id: str) -> ApiKey:
    """Raises NotFoundError (404) for an unknown id."""
    return _get(session, ApiKey, key_id, "api_key")


def list_keys(session: Session, *, limit: int, after: str | None = None,
              user_id: str | None = None, team_id: str | None = None,
              role: str | None = None, status: str | None = None) -> Page:
    """Keys by id (creation order), filtered; never their hashes."""
    stmt = select(ApiKey)
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    if team_id is not None:
        stmt = stmt.where(ApiKey.team_id == team_id)
    if role is not None:
        stmt = stmt.where(ApiKey.role == role)
    if status is not None:
        stmt = stmt.where(_status_clause(status, utcnow()))
    return paginate(session, stmt, ApiKey.id, limit=limit, after=after)


def _status_clause(status: str, now: datetime) -> ColumnElement[bool]:
    not_expired = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
    clauses: dict[str, ColumnElement[bool]] = {
        "revoked": ApiKey.revoked_at.is_not(None),
        "disabled": (ApiKey.revoked_at.is_(None) & ApiKey.disabled.is_(True)),
        "expired": (ApiKey.revoked_at.is_(None) & ApiKey.disabled.is_(False)
                    & ApiKey.expires_at.is_not(None) & (ApiKey.expires_at <= now)),
        "active": (ApiKey.revoked_at.is_(None) & ApiKey.disabled.is_(False) & not_expired),
    }
    return clauses[status]


def update_key(session: Session, key_id: str, *, actor: str,
               changes: Mapping[str, Any]) -> ApiKey:
    """Edit a key's settings. Raises NotFoundError (404) and ConflictError (409, revoked)."""
    key = get_key(session, key_id)
    if key.revoked:
        raise ConflictError("A revoked key cannot be edited.", code="api_key_revoked")
    _check_refs(session, changes)
    before = snapshot(key)
    _apply(key, changes)
    session.flush()
    audit(session, actor=actor, action="update", entity="api_key", entity_id=key.id,
          before=before, after=snapshot(key))
    bump(session, KEYS)
    return key


def revoke_key(session: Session, key_id: str, *, actor: str) -> ApiKey:
    """Revoke a key for good (idempotent: revoking twice keeps the first time)."""
    key = get_key(session, key_id)
    if key.revoked:
        return key
    before = snapshot(key)
    key.revoked_at = utcnow()
    session.flush()
    audit(session, actor=actor, action="revoke", entity="api_key", entity_id=key.id,
          before=before, after=snapshot(key))
    bump(session, KEYS)
    return key


def rotate_key(session: Session, key_id: str, *, actor: str) -> tuple[ApiKey, str]:
    """Give a key new secret material (same id and settings); the old key stops working."""
    key = get_key(session, key_id)
    if key.revoked:
        raise ConflictError("A revoked key cannot be rotated.", code="api_key_revoked")
    before = snapshot(key)
    plaintext = generate_key()
    key.key_hash, key.prefix = hash_key(plaintext), visible_prefix(plaintext)
    session.flush()
    audit(session, actor=actor, action="rotate", entity="api_key", entity_id=key.id,
          before=before, after=snapshot(key))
    bump(session, KEYS)
    return key, plaintext


def touch_last_used(session: Session, used: Mapping[str, datetime]) -> None:
    """Write a batch of "last used" times (not audited: it is usage, not an admin change)."""
    for key_id, at in used.items():
        session.execute(update(ApiKey).where(ApiKey.id == key_id)
                        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at))
                        .values(last_used_at=at))


# -- users and teams -----------------------------------------------------------------------


def create_user(session: Session, *, actor: str, fields: Mapping[str, Any]) -> User:
    """Create a user. Raises ConflictError (409) for a taken email, 400 for a bad team."""
    _check_refs(session, fields)
    if session.scalars(select(User.id).where(User.email == fields["email"])).first():
        raise ConflictError(f"A user with email '{fields['email']}' exists.", param="email")
    user = User(**fields)
    session.add(user)
    _flush_unique(session, f"A user with email '{fields['email']}' exists.", "email")
    audit(session, actor=actor, action="create", entity="user", entity_id=user.id,
          before=None, after=snapshot(user))
    return user


def get_user(session: Session, user_id: str) -> User:
    """Raises NotFoundError (404) for an unknown id."""
    return _get(session, User, user_id, "user")


def list_users(session: Session, *, limit: int, after: str | None = None,
               team_id: str | None = None, role: str | None = None,
               email: str | None = None) -> Page:
    """Users by id (creation order), filtered."""
    stmt = select(User)
    if team_id is not None:
        stmt = stmt.where(User.team_id == team_id)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if email is not None:
        stmt = stmt.where(User.email == email)
    return paginate(session, stmt, User.id, limit=limit, after=after)


def update_user(session: Session, user_id: str, *, actor: str,
                changes: Mapping[str, Any]) -> User:
    """Edit a user. Raises NotFoundError (404), ConflictError (409) for a taken email."""
    user = get_user(session, user_id)
    _check_refs(session, changes)
    email = changes.get("email")
    if email is not None and email != user.email and session.scalars(
            select(User.id).where(User.email == email)).first():
        raise ConflictError(f"A user with email '{email}' exists.", param="email")
    before = snapshot(user)
    _apply(user, changes)
    _flush_unique(session, f"A user with email '{email}' exists.", "email")
    audit(session, actor=actor, action="update", entity="user", entity_id=user.id,
          before=before, after=snapshot(user))
    return user


def delete_user(session: Session, user_id: str, *, actor: str) -> None:
    """Delete a user. Raises ConflictError (409) while the user owns keys that still work."""
    user = get_user(session, user_id)
    keys = list(session.scalars(select(ApiKey).where(ApiKey.user_id == user_id)))
    if any(not k.revoked for k in keys):
        raise ConflictError("The user still owns API keys that are not revoked; revoke them "
                            "first.", code="user_has_keys")
    for key in keys:  # revoked keys stay for the record, detached from the deleted user
        key.user_id = None
    before = snapshot(user)
    session.delete(user)
    audit(session, actor=actor, action="delete", entity="user", entity_id=user_id,
          before=before, after=None)


def create_team(session: Session, *, actor: str, fields: Mapping[str, Any]) -> Team:
    """Create a team. Raises ConflictError (409) for a taken name."""
    if session.scalars(select(Team.id).where(Team.name == fields["name"])).first():
        raise ConflictError(f"A team named '{fields['name']}' exists.", param="name")
    team = Team(**fields)
    session.add(team)
    _flush_unique(session, f"A team named '{fields['name']}' exists.", "name")
    audit(session, actor=actor, action="create", entity="team", entity_id=team.id,
          before=None, after=snapshot(team))
    return team


def get_team(session: Session, team_id: str) -> Team:
    """Raises NotFoundError (404) for an unknown id."""
    return _get(session, Team, team_id, "team")


def list_teams(session: Session, *, limit: int, after: str | None = None,
               name: str | None = None) -> Page:
    """Teams by id (creation order), filtered by name."""
    stmt = select(Team)
    if name is not None:
        stmt = stmt.where(Team.name == name)
    return paginate(session, stmt, Team.id, limit=limit, after=after)


def update_team(session: Session, team_id: str, *, actor: str,
                changes: Mapping[str, Any]) -> Team:
    """Rename a team. Raises NotFoundError (404), ConflictError (409) for a taken name."""
    team = get_team(session, team_id)
    name = changes.get("name")
    if name is not None and name != team.name and session.scalars(
            select(Team.id).where(Team.name == name)).first():
        raise ConflictError(f"A team named '{name}' exists.", param="name")
    before = snapshot(team)
    _apply(team, changes)
    _flush_unique(session, f"A team named '{name}' exists.", "name")
    audit(session, actor=actor, action="update", entity="team", entity_id=team.id,
          before=before, after=snapshot(team))
    return team


def delete_team(session: Session, team_id: str, *, actor: str) -> None:
    """Delete a team; its users and keys stay, without a team."""
    team = get_team(session, team_id)
    changed_keys = False
    for user in session.scalars(select(User).where(User.team_id == team_id)):
        user.team_id = None
    for key in session.scalars(select(ApiKey).where(ApiKey.team_id == team_id)):
        key.team_id = None
        changed_keys = True
    before = snapshot(team)
    session.delete(team)
    audit(session, actor=actor, action="delete", entity="team", entity_id=team_id,
          before=before, after=None)
    if changed_keys:  # cached principals carry the team id
        bump(session, KEYS)


# -- deployments ---------------------------------------------------------------------------


def deployment_entry(row: DeploymentRow) -> dict[str, Any]:
    """The stored deployment as a models: entry (secrets included: for the gateway only)."""
    entry: dict[str, Any] = {name: getattr(row, name) for name in DEPLOYMENT_COLUMNS
                             if getattr(row, name) is not None}
    entry.update(row.options or {})
    return entry


def to_deployment(row: DeploymentRow) -> Deployment:
    """A stored deployment as the routing layer's immutable Deployment, built by the same
    code as a YAML entry. Raises ConfigError for an entry this release cannot serve."""
    return build_deployment(deployment_entry(row), dep_id=row.id,
                            where=f"stored deployment {row.id}", env={}, key_source="admin-api")


def load_deployments(session: Session) -> list[Deployment]:
    """Every stored deployment that can be served, in creation order of their ids."""
    rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.created_at,
                                                          DeploymentRow.id))
    out = []
    for row in rows:
        try:
            out.append(to_deployment(row))
        except ConfigError:  # one bad stored entry must not take the others down
            log.exception("stored deployment skipped", extra={"deployment": row.id})
    return out


def _split_deployment(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Column values plus ``options`` (everything else) for a DeploymentRow."""
    columns = {k: v for k, v in fields.items() if k in DEPLOYMENT_COLUMNS}
    options = {k: v for k, v in fields.items() if k not in DEPLOYMENT_COLUMNS}
    columns["options"] = options or None
    return columns


def create_deployment(session: Session, *, actor: str, fields: Mapping[str, Any],
                      reserved_ids: frozenset[str]) -> DeploymentRow:
    """Store a deployment. ``reserved_ids`` are the YAML file's ids (which cannot be reused)."""
    fields = dict(fields)
    dep_id = fields.setdefault("id", new_id("dep"))
    if fields.get("api_base"):
        fields["api_base"] = fields["api_base"].rstrip("/")
    if dep_id in reserved_ids or session.get(DeploymentRow, dep_id) is not None:
        raise ConflictError(f"A deployment with id '{dep_id}' exists.", param="id")
    row = DeploymentRow(**_split_deployment(fields))
    session.add(row)
    _flush_unique(session, f"A deployment with id '{dep_id}' exists.", "id")
    audit(session, actor=actor, action="create", entity="deployment", entity_id=row.id,
          before=None, after=snapshot(row))
    bump(session, DEPLOYMENTS)
    return row


def get_deployment(session: Session, dep_id: str) -> DeploymentRow:
    """Raises NotFoundError (404) for an unknown id."""
    return _get(session, DeploymentRow, dep_id, "deployment")


def list_deployments(session: Session, *, limit: int, after: str | None = None,
                     name: str | None = None, provider: str | None = None) -> Page:
    """Stored deployments by id, filtered (the YAML ones are not listed here)."""
    stmt = select(DeploymentRow)
    if name is not None:
        stmt = stmt.where(DeploymentRow.name == name)
    if provider is not None:
        stmt = stmt.where(DeploymentRow.provider == provider)
    return paginate(session, stmt, DeploymentRow.id, limit=limit, after=after)


def update_deployment(session: Session, dep_id: str, *, actor: str,
                      fields: Mapping[str, Any]) -> DeploymentRow:
    """Replace a stored deployment's fields with ``fields``: the stored entry merged with
    the changes and validated as a whole (see the admin API), so every field is rewritten."""
    row = get_deployment(session, dep_id)
    before = snapshot(row)
    values = _split_deployment({**fields, "id": dep_id})
    for name in DEPLOYMENT_COLUMNS - {"id"}:
        setattr(row, name, values.get(name))
    row.options = values["options"]
    if row.api_base:
        row.api_base = row.api_base.rstrip("/")
    session.flush()
    audit(session, actor=actor, action="update", entity="deployment", entity_id=row.id,
          before=before, after=snapshot(row))
    bump(session, DEPLOYMENTS)
    return row


def delete_deployment(session: Session, dep_id: str, *, actor: str) -> None:
    """Delete a stored deployment; workers drop it at their next sync."""
    row = get_deployment(session, dep_id)
    before = snapshot(row)
    session.delete(row)
    audit(session, actor=actor, action="delete", entity="deployment", entity_id=dep_id,
          before=before, after=None)
    bump(session, DEPLOYMENTS)


# -- audit log reads -----------------------------------------------------------------------


def list_audit(session: Session, *, limit: int, after: int | None = None,
               entity: str | None = None, entity_id: str | None = None,
               actor: str | None = None, action: str | None = None) -> Page:
    """Audit entries in the order they were written, filtered."""
    stmt = select(AuditEntry)
    for column, value in ((AuditEntry.entity, entity), (AuditEntry.entity_id, entity_id),
                          (AuditEntry.actor, actor), (AuditEntry.action, action)):
        if value is not None:
            stmt = stmt.where(column == value)
    return paginate(session, stmt, AuditEntry.id, limit=limit, after=after)
