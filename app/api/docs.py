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
                                       "which is not sent upstream)."}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": "ChatCompletionRequest"}}},
        "responses": {
            "200": {"description": "The completion, or a stream of chunks",
                    "headers": ROUTING_HEADERS,
                    "content": {"application/json": {"schema": "ChatCompletion"},
                                "text/event-stream": {"schema": "ChatCompletionChunk"}}},
            "429": _error("Every deployment is at its rpm/tpm limit, or the upstream's 429"),
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
    "admin.effective_config": {"get": {
        "tags": ["admin"], "summary": "The effective configuration, secrets redacted",
        "security": SECURED,
        "responses": {"200": _ok("EffectiveConfig"), **COMMON_ERRORS,
                      "403": _error("The key is not an admin key")}}},
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
