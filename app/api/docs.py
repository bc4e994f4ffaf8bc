"""``GET /openapi.json`` (built by apispec from the marshmallow schemas); Swagger UI at ``/docs``.

Swagger UI's files come from the ``swagger-ui-bundle`` package, so the docs work offline.
Each endpoint's operation is declared here next to the schemas it uses; a test checks that
every URL rule of the app appears in the document, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, Response, current_app, send_from_directory

from app.schemas import admin as admin_schemas
from app.schemas.chat import (
    ChatCompletionChunkSchema,
    ChatCompletionRequestSchema,
    ChatCompletionSchema,
)
from app.schemas.common import ErrorSchema
from app.schemas.models import ModelListSchema, ModelSchema
from app.schemas.ops import EffectiveConfigSchema, LiveSchema, ReadySchema, RoutingReportSchema

bp = Blueprint("docs", __name__)

OPENAPI_VERSION = "3.1.0"
_SPEC_KEY = "neuroroute.openapi"

SCHEMAS = {
    "Error": ErrorSchema,
    "ChatCompletionRequest": ChatCompletionRequestSchema,
    "ChatCompletion": ChatCompletionSchema,
    "ChatCompletionChunk": ChatCompletionChunkSchema,
    "Model": ModelSchema,
    "ModelList": ModelListSchema,
    "Live": LiveSchema,
    "Ready": ReadySchema,
    "EffectiveConfig": EffectiveConfigSchema,
    "KeyCreateRequest": admin_schemas.KeyCreateSchema,
    "KeyUpdateRequest": admin_schemas.KeyUpdateSchema,
    "Key": admin_schemas.KeySchema,
    "KeyWithSecret": admin_schemas.KeyWithSecretSchema,
    "KeyList": admin_schemas.KeyListSchema,
    "UserCreateRequest": admin_schemas.UserCreateSchema,
    "UserUpdateRequest": admin_schemas.UserUpdateSchema,
    "User": admin_schemas.UserSchema,
    "UserList": admin_schemas.UserListSchema,
    "TeamCreateRequest": admin_schemas.TeamCreateSchema,
    "TeamUpdateRequest": admin_schemas.TeamUpdateSchema,
    "Team": admin_schemas.TeamSchema,
    "TeamList": admin_schemas.TeamListSchema,
    "DeploymentCreateRequest": admin_schemas.DeploymentCreateSchema,
    "DeploymentUpdateRequest": admin_schemas.DeploymentUpdateSchema,
    "Deployment": admin_schemas.DeploymentSchema,
    "DeploymentList": admin_schemas.DeploymentListSchema,
    "UsageReport": admin_schemas.UsageReportSchema,
    "AuditEntry": admin_schemas.AuditEntrySchema,
    "AuditList": admin_schemas.AuditListSchema,
    "RoutingReport": RoutingReportSchema,
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": "Error"}}}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


COMMON_ERRORS = {
    "401": _error("Missing, malformed or unknown API key"),
    "500": _error("Internal error (no details are exposed)"),
}
SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}]
ROUTING_HEADERS = {
    "x-neuroroute-deployment": {"description": "The deployment that served the request",
                                "schema": {"type": "string"}},
    "x-neuroroute-attempts": {"description": "Upstream attempts made (retries + fallbacks + 1)",
                              "schema": {"type": "integer"}},
    "x-neuroroute-route": {"description": "How it was routed, e.g. `model=gpt-4o; "
                                          "fallback=gpt-4o-mini` or `auto; tier=medium; "
                                          "reason=code; tokens=812`",
                           "schema": {"type": "string"}},
}

ADMIN_ERRORS = {**COMMON_ERRORS, "403": _error("The key is not an admin key")}


def _path_param(name: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}


def _admin_op(method: str, summary: str, *, ok: tuple[str, str | None],
              body: str | None = None, query: type | None = None,
              path_param: str | None = None,
              errors: dict[str, str] | None = None) -> dict[str, Any]:
    """One documented admin operation: admin-only, bearer-secured, OpenAI-shaped errors."""
    status, schema = ok
    op: dict[str, Any] = {
        "tags": ["admin"], "summary": summary, "security": SECURED,
        "responses": {status: _ok(schema) if schema else {"description": "Deleted"},
                      **ADMIN_ERRORS,
                      **{code: _error(text) for code, text in (errors or {}).items()}},
    }
    params: list[dict[str, Any]] = []
    if path_param:
        params.append(_path_param(path_param))
        op["responses"].setdefault("404", _error("No such entity"))
    if query is not None:
        params.append({"in": "query", "schema": query})
        op["responses"].setdefault("400", _error("Invalid query parameter (`param` names it)"))
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
        op["responses"].setdefault("400", _error("Invalid JSON or field (`param` names it)"))
        op["responses"]["415"] = _error("Body not sent as application/json")
    return {method: op}


def _admin_crud(entity: str, plural: str, schema: str, id_param: str, query: type,
                conflict: str | None) -> dict[str, dict[str, Any]]:
    errors = {"409": conflict} if conflict else {}
    return {
        f"admin.create_{entity}": _admin_op("post", f"Create a {entity}", ok=("201", schema),
                                            body=f"{schema}CreateRequest", errors=errors),
        f"admin.list_{plural}": _admin_op("get", f"List {plural} (cursor pagination, filters)",
                                          ok=("200", f"{schema}List"), query=query),
        f"admin.get_{entity}": _admin_op("get", f"Get one {entity}", ok=("200", schema),
                                         path_param=id_param),
        f"admin.update_{entity}": _admin_op("patch", f"Change some fields of a {entity}",
                                            ok=("200", schema), body=f"{schema}UpdateRequest",
                                            path_param=id_param, errors=errors),
    }


ADMIN_OPERATIONS: dict[str, dict[str, Any]] = {
    **_admin_crud("key", "keys", "Key", "key_id", admin_schemas.KeyListQuerySchema,
                  "The key is revoked"),
    "admin.create_key": _admin_op(
        "post", "Create an API key (the key is in the response, once)",
        ok=("201", "KeyWithSecret"), body="KeyCreateRequest",
        errors={"400": "Invalid field, or unknown user_id/team_id (`param` names it)"}),
    "admin.revoke_key": _admin_op(
        "post", "Revoke a key: every worker refuses it within NEUROROUTE_SYNC_INTERVAL s",
        ok=("200", "Key"), path_param="key_id"),
    "admin.rotate_key": _admin_op(
        "post", "New secret for a key (same id and settings); the old one stops working",
        ok=("200", "KeyWithSecret"), path_param="key_id",
        errors={"409": "The key is revoked"}),
    **_admin_crud("user", "users", "User", "user_id", admin_schemas.UserListQuerySchema,
                  "A user with this email exists"),
    "admin.delete_user": _admin_op("delete", "Delete a user", ok=("204", None),
                                   path_param="user_id",
                                   errors={"409": "The user owns keys that are not revoked"}),
    **_admin_crud("team", "teams", "Team", "team_id", admin_schemas.TeamListQuerySchema,
                  "A team with this name exists"),
    "admin.delete_team": _admin_op("delete", "Delete a team (its users and keys are kept)",
                                   ok=("204", None), path_param="team_id"),
    **_admin_crud("deployment", "deployments", "Deployment", "dep_id",
                  admin_schemas.DeploymentListQuerySchema,
                  "A deployment with this id exists (in the database or the YAML file)"),
    "admin.delete_deployment": _admin_op("delete", "Delete a stored deployment",
                                         ok=("204", None), path_param="dep_id"),
    "admin.usage_report": _admin_op("get", "Usage and cost: totals, grouped by day/model/key/"
                                    "user/team/deployment", ok=("200", "UsageReport"),
                                    query=admin_schemas.UsageQuerySchema),
    "admin.list_audit": _admin_op("get", "Read the audit log of admin changes",
                                  ok=("200", "AuditList"),
                                  query=admin_schemas.AuditListQuerySchema),
}

def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


CHAT_HEADERS: dict[str, Any] = {
    "X-Request-ID": _header("The caller's id, or a new one; also sent upstream"),
    "x-neuroroute-cache": _header("Response cache: hit | miss | skip"),
    "x-neuroroute-cost": _header("Cost in USD (non-stream), or `unknown` without a price"),
    "x-neuroroute-overhead-ms": _header("The gateway's own time before the answer started"),
    "x-ratelimit-limit-requests": _header("Requests per minute of the key (when limited)"),
    "x-ratelimit-remaining-requests": _header("Requests left in the window"),
    "x-ratelimit-reset-requests": _header("Time until the window resets, e.g. `12.5s`"),
    "x-ratelimit-limit-tokens": _header("Tokens per minute of the key (when limited)"),
    "x-ratelimit-remaining-tokens": _header("Tokens left in the window"),
    "x-ratelimit-reset-tokens": _header("Time until the window resets"),
}

OPERATIONS: dict[str, dict[str, Any]] = {
    "chat.create_chat_completion": {"post": {
        "tags": ["chat"],
        "summary": "Create a chat completion (OpenAI-compatible)",
        "description": "Fields the gateway does not know are passed to the upstream untouched. "
                       "With `stream: true` the answer is `text/event-stream`: one "
                       "`ChatCompletionChunk` per `data:` event, then `data: [DONE]`. An error "
                       "after the stream began is sent as a final `data: {\"error\": ...}` event.",
        "security": SECURED,
        "parameters": [{"in": "header", "name": "X-Request-ID", "required": False,
                        "schema": {"type": "string"},
                        "description": "Echoed back and sent upstream; generated if absent."},
                       {"in": "header", "name": "x-neuroroute-fallbacks", "required": False,
                        "schema": {"type": "string", "enum": ["on", "off"]},
                        "description": "`off` disables fallback groups for this request "
                                       "(same as body field `neuroroute: {fallbacks: false}`, "
                                       "which is not sent upstream)."},
                       {"in": "header", "name": "Cache-Control", "required": False,
                        "schema": {"type": "string", "enum": ["no-cache", "no-store"]},
                        "description": "`no-cache`: do not answer from the response cache "
                                       "(the fresh answer is stored); `no-store`: bypass it."}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": "ChatCompletionRequest"}}},
        "responses": {
            "200": {"description": "The completion, or a stream of chunks",
                    "headers": {**ROUTING_HEADERS, **CHAT_HEADERS},
                    "content": {"application/json": {"schema": "ChatCompletion"},
                                "text/event-stream": {"schema": "ChatCompletionChunk"}}},
            "429": {**_error("The key's rate limit (`rate_limit_exceeded`, with Retry-After and "
                             "x-ratelimit-* headers), a spent budget (`insufficient_quota`), "
                             "every deployment at its rpm/tpm capacity, or the upstream's 429"),
                    "headers": {"Retry-After": _header("Seconds to wait", "integer"),
                                **{k: v for k, v in CHAT_HEADERS.items()
                                   if k.startswith("x-ratelimit")}}},
            "503": _error("No deployment available, or the upstream's 503"),
            "400": _error("Invalid JSON or invalid field (`param` names it)"),
            **COMMON_ERRORS,
            "404": _error("Unknown model, or a model the key may not use"),
            "413": _error("Request body larger than NEUROROUTE_MAX_BODY_BYTES"),
            "415": _error("Body not sent as application/json"),
            "502": _error("The upstream failed or could not be reached"),
            "504": _error("The upstream timed out"),
        },
    }},
    "models.list_models": {"get": {
        "tags": ["models"], "summary": "List the models this key may use", "security": SECURED,
        "responses": {"200": _ok("ModelList"), **COMMON_ERRORS}}},
    "models.retrieve_model": {"get": {
        "tags": ["models"], "summary": "Retrieve one model", "security": SECURED,
        "parameters": [{"in": "path", "name": "model_id", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": _ok("Model"), **COMMON_ERRORS, "404": _error("Unknown model")}}},
    "health.live": {"get": {
        "tags": ["health"], "summary": "Liveness: the process is up",
        "responses": {"200": _ok("Live")}}},
    "health.ready": {"get": {
        "tags": ["health"], "summary": "Readiness: configuration and dependencies",
        "responses": {"200": _ok("Ready"), "503": _ok("Ready", "Not ready")}}},
    "health.metrics": {"get": {
        "tags": ["health"], "summary": "Prometheus metrics of all workers",
        "description": "Bearer NEUROROUTE_METRICS_TOKEN when set; loopback clients only "
                       "otherwise.",
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": _error("Wrong metrics token"),
                      "403": _error("Not a loopback client and no token configured")}}},
    "admin.effective_config": {"get": {
        "tags": ["admin"], "summary": "The effective configuration, secrets redacted",
        "security": SECURED,
        "responses": {"200": _ok("EffectiveConfig"), **COMMON_ERRORS,
                      "403": _error("The key is not an admin key")}}},
    **ADMIN_OPERATIONS,
    "admin.routing_status": {"get": {
        "tags": ["admin"], "summary": "Routing: groups, strategies, fallbacks, deployment health",
        "description": "Circuit-breaker state (shared through Redis when configured) and this "
                       "worker's in-flight counts, latency averages and rpm/tpm windows. "
                       "Makes no upstream call.",
        "security": SECURED,
        "responses": {"200": _ok("RoutingReport"), **COMMON_ERRORS,
                      "403": _error("The key is not an admin key")}}},
    "docs.openapi_json": {"get": {
        "tags": ["docs"], "summary": "This OpenAPI document",
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "docs.swagger_ui": {"get": {
        "tags": ["docs"], "summary": "Swagger UI (served offline)",
        "responses": {"200": {"description": "HTML page",
                              "content": {"text/html": {"schema": {"type": "string"}}}}}}},
}

# Endpoints that are plumbing (static files of the UI), not part of the API.
UNDOCUMENTED = {"static", "docs.swagger_static"}


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="NeuroRoute",
        version="0.1.0",
        openapi_version=OPENAPI_VERSION,
        info={"description": "Self-hosted OpenAI-compatible LLM gateway. Every error body is "
                             "OpenAI's envelope `{\"error\": {message, type, param, code}}`."},
        plugins=[FlaskPlugin(), MarshmallowPlugin()],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "description": "NeuroRoute API key"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for endpoint, operations in OPERATIONS.items():
        view = app.view_functions.get(endpoint)
        if view is None:  # a blueprint not registered in this app
            continue
        spec.path(view=view, operations=operations, app=app)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    spec = current_app.extensions.get(_SPEC_KEY)
    if spec is None:
        spec = current_app.extensions[_SPEC_KEY] = build_spec(current_app)
    return spec


_SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NeuroRoute API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-initializer-neuroroute.js"></script>
</body></html>
"""

_SWAGGER_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
};
"""


@bp.get("/docs")
def swagger_ui() -> Response:
    return Response(_SWAGGER_PAGE, mimetype="text/html")


@bp.get("/docs/<path:filename>")
def swagger_static(filename: str) -> Response:
    if filename == "swagger-initializer-neuroroute.js":
        return Response(_SWAGGER_INIT, mimetype="text/javascript")
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600)
