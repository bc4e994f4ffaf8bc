"""``/admin/*``: management endpoints for admin keys (the master key or admin-role keys).

HTTP only: the views parse (``@bp.arguments``: the marshmallow schemas of ``app.schemas``,
which also make the OpenAPI document), call :class:`~app.admin.service.AdminService` and
serialize (``@bp.response``). One pair of ``MethodView``s, made by :func:`entity_views`,
serves keys, users, teams and deployments.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask.views import MethodView
from marshmallow import Schema

from app.admin.service import AdminService, Listing
from app.api.bodies import read_json_object
from app.api.spec import ADMIN, Blueprint
from app.auth.service import require_admin
from app.gateway import gateway
from app.schemas import admin as s
from app.schemas.ops import EffectiveConfigSchema, RoutingReportSchema

bp = Blueprint("admin", __name__, url_prefix="/admin", errors=ADMIN, secured=True,
               json_body=read_json_object,
               description="Keys, users, teams, stored deployments, audit log, usage, "
                           "configuration and routing state (admin keys only).")


@bp.before_request
def _admins_only() -> None:
    require_admin(g.principal)


def service() -> AdminService:
    """The admin service over this worker's database; a change re-syncs this worker at once
    and the others within ``NEUROROUTE_SYNC_INTERVAL`` seconds."""
    gw = gateway()
    return AdminService(db=gw.db, announce=gw.sync.changed,
                        yaml_deployment_ids=frozenset(d.id for d in gw.settings.deployments))


def _actor() -> str:
    key_id: str = g.principal.key_id
    return key_id


def _the_id(path_args: dict[str, str]) -> str:
    """The one path argument of an item URL (its name differs per entity: ``key_id``...)."""
    (entity_id,) = path_args.values()
    return entity_id


def entity_views(label: str, plural: str, *, id_rule: str, schema: type[Schema],
                 create: type[Schema], update: type[Schema], query: type[Schema],
                 listing: type[Schema], created: type[Schema] | None = None,
                 conflict: str, delete_conflict: str | None = None,
                 deletable: bool = True) -> None:
    """Register ``/admin/<plural>`` (list, create) and ``/admin/<plural>/<id>`` (get, change,
    and delete when ``deletable``) for one entity."""
    name = label.replace("api_", "")
    not_found = f"No {name} with this id"

    @bp.arguments(query, location="query")
    @bp.response(200, listing)
    @bp.doc(summary=f"List {plural} (cursor pagination, filters)")
    def list_(_view: MethodView, args: dict[str, Any]) -> Listing:
        return service().page(label, args)

    @bp.arguments(create)
    @bp.response(201, created or schema)
    @bp.errors(_409=conflict)
    @bp.doc(summary=f"Create a {name}")
    def create_(_view: MethodView, fields: dict[str, Any]) -> Any:
        return service().create(label, fields, actor=_actor())

    @bp.response(200, schema)
    @bp.errors(_404=not_found)
    @bp.doc(summary=f"Get one {name}")
    def get_(_view: MethodView, **ids: str) -> Any:
        return service().get(label, _the_id(ids))

    @bp.arguments(update)
    @bp.response(200, schema)
    @bp.errors(_404=not_found, _409=conflict)
    @bp.doc(summary=f"Change some fields of a {name} (null clears an optional one)")
    def patch_(_view: MethodView, changes: dict[str, Any], **ids: str) -> Any:
        return service().update(label, _the_id(ids), changes, actor=_actor())

    @bp.response(204)
    @bp.errors(_404=not_found, **({"_409": delete_conflict} if delete_conflict else {}))
    @bp.doc(summary=f"Delete a {name}")
    def delete_(_view: MethodView, **ids: str) -> Response:
        service().delete(label, _the_id(ids), actor=_actor())
        return Response(status=204)

    item_methods: dict[str, Any] = {"get": get_, "patch": patch_}
    if deletable:
        item_methods["delete"] = delete_
    bp.add_url_rule(f"/{plural}", endpoint=plural,
                    view_func=type(f"{name.title()}List", (MethodView,),
                                   {"get": list_, "post": create_}))
    bp.add_url_rule(f"/{plural}/{id_rule}", endpoint=name,
                    view_func=type(f"{name.title()}Item", (MethodView,), item_methods))


entity_views("api_key", "keys", id_rule="<key_id>", schema=s.KeySchema,
             create=s.KeyCreateSchema, update=s.KeyUpdateSchema, query=s.KeyListQuerySchema,
             listing=s.KeyListSchema, created=s.KeyWithSecretSchema,
             conflict="The key is revoked", deletable=False)
entity_views("user", "users", id_rule="<user_id>", schema=s.UserSchema,
             create=s.UserCreateSchema, update=s.UserUpdateSchema, query=s.UserListQuerySchema,
             listing=s.UserListSchema, conflict="A user with this email exists",
             delete_conflict="The user owns keys that are not revoked")
entity_views("team", "teams", id_rule="<team_id>", schema=s.TeamSchema,
             create=s.TeamCreateSchema, update=s.TeamUpdateSchema, query=s.TeamListQuerySchema,
             listing=s.TeamListSchema, conflict="A team with this name exists")
entity_views("deployment", "deployments", id_rule="<path:dep_id>", schema=s.DeploymentSchema,
             create=s.DeploymentCreateSchema, update=s.DeploymentUpdateSchema,
             query=s.DeploymentListQuerySchema, listing=s.DeploymentListSchema,
             conflict="A deployment with this id exists (in the database or the YAML file)")


@bp.post("/keys/<key_id>/revoke")
@bp.response(200, s.KeySchema)
@bp.errors(_404="No key with this id")
def revoke_key(key_id: str) -> Any:
    """Revoke a key: every worker refuses it within NEUROROUTE_SYNC_INTERVAL s"""
    return service().revoke_key(key_id, actor=_actor())


@bp.post("/keys/<key_id>/rotate")
@bp.response(200, s.KeyWithSecretSchema)
@bp.errors(_404="No key with this id", _409="The key is revoked")
def rotate_key(key_id: str) -> Any:
    """New secret for a key (same id and settings); the old one stops working"""
    return service().rotate_key(key_id, actor=_actor())


@bp.get("/audit")
@bp.arguments(s.AuditListQuerySchema, location="query")
@bp.response(200, s.AuditListSchema)
def list_audit(query: dict[str, Any]) -> Listing:
    """Read the audit log of admin changes"""
    return service().audit(query)


@bp.get("/usage")
@bp.arguments(s.UsageQuerySchema, location="query")
@bp.response(200, s.UsageReportSchema)
def usage_report(query: dict[str, Any]) -> dict[str, Any]:
    """Usage and cost: totals, grouped by day/model/key/user/team/deployment"""
    return service().usage(query)


@bp.get("/config")
@bp.response(200, EffectiveConfigSchema)
def effective_config() -> dict[str, Any]:
    """The effective configuration, secrets redacted"""
    return gateway().settings.public_dict()


@bp.get("/routing")
@bp.response(200, RoutingReportSchema)
def routing_status() -> dict[str, Any]:
    """Routing: groups, strategies, fallbacks, deployment health

    Circuit-breaker state (shared through Redis when configured) and this worker's in-flight
    counts, latency averages and rpm/tpm windows. Makes no upstream call.
    """
    return gateway().dispatcher.report()
