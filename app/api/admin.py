"""``/admin/*``: management endpoints for admin keys (the master key or admin-role keys).

Each handler parses (marshmallow), calls one repository function inside a transaction, and
serialises. After the commit the worker that served the change re-syncs at once; the others
follow within ``NEUROROUTE_SYNC_INTERVAL`` seconds (see ``app.sync``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Response, g, request
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.api.bodies import read_json_object
from app.auth.service import require_admin
from app.db import repo
from app.errors import InvalidRequestError
from app.gateway import gateway
from app.schemas import admin as s
from app.schemas.chat import first_error

bp = Blueprint("admin", __name__, url_prefix="/admin")

_key, _key_secret = s.KeySchema(), s.KeyWithSecretSchema()
_user, _team, _deployment, _audit = (s.UserSchema(), s.TeamSchema(), s.DeploymentSchema(),
                                     s.AuditEntrySchema())


@bp.before_request
def _admins_only() -> None:
    require_admin(g.principal)


def _load(schema: Schema, data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate with ``schema``; raises InvalidRequestError (400) naming the first bad field."""
    try:
        loaded: dict[str, Any] = schema.load(data, partial=partial)
    except ValidationError as exc:
        param, message = first_error(exc.messages)
        if message == "Missing data for required field.":
            raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                      code="missing_required_parameter") from None
        raise InvalidRequestError(f"Invalid value for '{param}': {message}", param=param,
                                  code="invalid_value") from None
    return loaded


def _body(schema: Schema, *, partial: bool = False) -> dict[str, Any]:
    """The JSON body validated by ``schema`` (415 if not JSON, 400 if invalid)."""
    return _load(schema, read_json_object(), partial=partial)


def _query(schema: Schema) -> dict[str, Any]:
    return _load(schema, request.args.to_dict())


def _actor() -> str:
    key_id: str = g.principal.key_id
    return key_id


@contextmanager
def _change() -> Iterator[Session]:
    """A transaction for one admin change; after the commit this worker re-syncs at once and
    the others are told to (Redis) or notice at their next poll."""
    gw = gateway()
    with gw.db.session() as session:
        yield session
    gw.sync.changed()


def _page(schema: Schema, page: repo.Page) -> dict[str, Any]:
    data = [schema.dump(item) for item in page.items]
    return {"object": "list", "data": data, "has_more": page.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def _keys_out(keys: list[Any], schema: Schema | None = None) -> list[dict[str, Any]]:
    """Key objects with the spend of their current budget period (one query per page)."""
    from datetime import UTC, datetime

    from app.usage.budgets import period_start
    from app.usage.store import spend_by_key

    now = datetime.now(UTC)
    dumped = [dict((schema or _key).dump(key)) for key in keys]
    if keys:
        try:
            spend = spend_by_key(gateway().db, [k.id for k in keys],
                                 {k.id: period_start(k.budget_period, now) for k in keys})
        except SQLAlchemyError:  # the usage table is unreachable: say so, do not fail
            spend = {}
        for item in dumped:
            item["spend"] = spend.get(item["id"])
    return dumped


def _no_content() -> Response:
    return Response(status=204)


@bp.get("/config")
def effective_config() -> dict[str, Any]:
    """The effective configuration, with every secret redacted."""
    return gateway().settings.public_dict()


# -- API keys ------------------------------------------------------------------------------


@bp.post("/keys")
def create_key() -> tuple[dict[str, Any], int]:
    """Create a key; the response holds the key itself, once (201)."""
    fields = _body(s.KeyCreateSchema())
    with _change() as session:
        key, plaintext = repo.create_key(session, actor=_actor(), fields=fields)
        out = _keys_out([key], _key_secret)[0]
    return {**out, "key": plaintext}, 201


@bp.get("/keys")
def list_keys() -> dict[str, Any]:
    """A page of keys (never the keys themselves)."""
    with gateway().db.session() as session:
        page = repo.list_keys(session, **_query(s.KeyListQuerySchema()))
        listing = _page(_key, page)
        listing["data"] = _keys_out(list(page.items))
        return listing


@bp.get("/keys/<key_id>")
def get_key(key_id: str) -> dict[str, Any]:
    """One key (404 if unknown)."""
    with gateway().db.session() as session:
        return _keys_out([repo.get_key(session, key_id)])[0]


@bp.patch("/keys/<key_id>")
def update_key(key_id: str) -> dict[str, Any]:
    """Change some fields of a key (409 if revoked)."""
    changes = _body(s.KeyUpdateSchema(), partial=True)
    with _change() as session:
        key = repo.update_key(session, key_id, actor=_actor(), changes=changes)
        return _keys_out([key])[0]


@bp.post("/keys/<key_id>/revoke")
def revoke_key(key_id: str) -> dict[str, Any]:
    """Revoke a key for good (idempotent)."""
    with _change() as session:
        key = repo.revoke_key(session, key_id, actor=_actor())
        return _keys_out([key])[0]


@bp.post("/keys/<key_id>/rotate")
def rotate_key(key_id: str) -> dict[str, Any]:
    """New secret for a key; the response holds it, once."""
    with _change() as session:
        key, plaintext = repo.rotate_key(session, key_id, actor=_actor())
        out = _keys_out([key], _key_secret)[0]
    return {**out, "key": plaintext}


# -- users ---------------------------------------------------------------------------------


@bp.post("/users")
def create_user() -> tuple[dict[str, Any], int]:
    """Create a user (201; 409 for a taken email)."""
    fields = _body(s.UserCreateSchema())
    with _change() as session:
        user = repo.create_user(session, actor=_actor(), fields=fields)
    return dict(_user.dump(user)), 201


@bp.get("/users")
def list_users() -> dict[str, Any]:
    """A page of users."""
    with gateway().db.session() as session:
        return _page(_user, repo.list_users(session, **_query(s.UserListQuerySchema())))


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> dict[str, Any]:
    """One user (404 if unknown)."""
    with gateway().db.session() as session:
        return dict(_user.dump(repo.get_user(session, user_id)))


@bp.patch("/users/<user_id>")
def update_user(user_id: str) -> dict[str, Any]:
    """Change some fields of a user."""
    changes = _body(s.UserUpdateSchema(), partial=True)
    with _change() as session:
        user = repo.update_user(session, user_id, actor=_actor(), changes=changes)
    return dict(_user.dump(user))


@bp.delete("/users/<user_id>")
def delete_user(user_id: str) -> Response:
    """Delete a user (409 while they own keys that are not revoked)."""
    with _change() as session:
        repo.delete_user(session, user_id, actor=_actor())
    return _no_content()


# -- teams ---------------------------------------------------------------------------------


@bp.post("/teams")
def create_team() -> tuple[dict[str, Any], int]:
    """Create a team (201; 409 for a taken name)."""
    fields = _body(s.TeamCreateSchema())
    with _change() as session:
        team = repo.create_team(session, actor=_actor(), fields=fields)
    return dict(_team.dump(team)), 201


@bp.get("/teams")
def list_teams() -> dict[str, Any]:
    """A page of teams."""
    with gateway().db.session() as session:
        return _page(_team, repo.list_teams(session, **_query(s.TeamListQuerySchema())))


@bp.get("/teams/<team_id>")
def get_team(team_id: str) -> dict[str, Any]:
    """One team (404 if unknown)."""
    with gateway().db.session() as session:
        return dict(_team.dump(repo.get_team(session, team_id)))


@bp.patch("/teams/<team_id>")
def update_team(team_id: str) -> dict[str, Any]:
    """Rename a team."""
    changes = _body(s.TeamUpdateSchema(), partial=True)
    with _change() as session:
        team = repo.update_team(session, team_id, actor=_actor(), changes=changes)
    return dict(_team.dump(team))


@bp.delete("/teams/<team_id>")
def delete_team(team_id: str) -> Response:
    """Delete a team; its users and keys stay, without it."""
    with _change() as session:
        repo.delete_team(session, team_id, actor=_actor())
    return _no_content()


# -- deployments ---------------------------------------------------------------------------


@bp.post("/deployments")
def create_deployment() -> tuple[dict[str, Any], int]:
    """Store a deployment; every worker serves it within the sync bound."""
    fields = _body(s.DeploymentCreateSchema())
    reserved = frozenset(d.id for d in gateway().settings.deployments)
    with _change() as session:
        row = repo.create_deployment(session, actor=_actor(), fields=fields,
                                     reserved_ids=reserved)
    return dict(_deployment.dump(row)), 201


@bp.get("/deployments")
def list_deployments() -> dict[str, Any]:
    """A page of stored deployments (secrets redacted)."""
    with gateway().db.session() as session:
        return _page(_deployment,
                     repo.list_deployments(session, **_query(s.DeploymentListQuerySchema())))


@bp.get("/deployments/<path:dep_id>")
def get_deployment(dep_id: str) -> dict[str, Any]:
    """One stored deployment (secrets redacted)."""
    with gateway().db.session() as session:
        return dict(_deployment.dump(repo.get_deployment(session, dep_id)))


@bp.patch("/deployments/<path:dep_id>")
def update_deployment(dep_id: str) -> dict[str, Any]:
    """Change some fields of a stored deployment (``null`` removes an optional one).

    The changes are merged into the stored entry and the result is validated as a whole, by
    the same schema as a new deployment (and as the YAML file), so no combination of edits
    can store an entry that creation would refuse.
    """
    changes = read_json_object()
    if changes.get("id", dep_id) != dep_id:
        raise InvalidRequestError("Invalid value for 'id': a deployment's id cannot change.",
                                  param="id", code="invalid_value")
    # Field errors are reported on what was sent; its loaded form is not used, because a
    # partial load would fill in defaults (headers, weight...) over the stored values.
    _load(s.DeploymentUpdateSchema(), {k: v for k, v in changes.items() if v is not None},
          partial=True)
    with _change() as session:
        merged = repo.deployment_entry(repo.get_deployment(session, dep_id))
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        fields = _load(s.DeploymentCreateSchema(), {**merged, "id": dep_id})
        row = repo.update_deployment(session, dep_id, actor=_actor(), fields=fields)
    return dict(_deployment.dump(row))


@bp.delete("/deployments/<path:dep_id>")
def delete_deployment(dep_id: str) -> Response:
    """Delete a stored deployment."""
    with _change() as session:
        repo.delete_deployment(session, dep_id, actor=_actor())
    return _no_content()


# -- usage -------------------------------------------------------------------------------


@bp.get("/usage")
def usage_report() -> dict[str, Any]:
    """Usage totals (requests, tokens, cost, errors, cache hits), optionally grouped."""
    from app.usage.store import usage_report as report

    query = _query(s.UsageQuerySchema())
    group_by = query.pop("group_by", None)
    return report(gateway().db, group_by=group_by, **query)


# -- audit log -----------------------------------------------------------------------------


@bp.get("/audit")
def list_audit() -> dict[str, Any]:
    """A page of the audit log."""
    with gateway().db.session() as session:
        return _page(_audit, repo.list_audit(session, **_query(s.AuditListQuerySchema())))
@bp.get("/routing")
def routing_status() -> dict[str, Any]:
    """Model groups, strategies, fallbacks and each deployment's health (no upstream calls)."""
    return gateway().dispatcher.report()
