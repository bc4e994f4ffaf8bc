"""``GET /openapi.json`` (made by flask-smorest from the blueprints and their marshmallow
schemas) and Swagger UI 5 at ``/docs``.

Swagger UI's files come from the ``swagger-ui-py`` package (Swagger UI 5, which reads
OpenAPI 3.1), so the docs work offline; the page loads no inline script, so its CSP allows
scripts from this origin only.
"""

from __future__ import annotations

from typing import Any

import flask
import orjson
from flask import Flask, Response, current_app, send_from_directory
from swagger_ui.utils import SWAGGER_UI_PY_ROOT

from app.api.spec import BEARER, OPENAPI_VERSION, Api, Blueprint, SchemaExtrasPlugin, documented
from app.http_headers import DOCS_CSP
from app.schemas.chat import ChatCompletionChunkSchema
from app.settings import Settings

bp = Blueprint("docs", __name__, description="This document and Swagger UI.")
# Swagger UI's static files; a plain blueprint, so they are not operations of the API.
assets = flask.Blueprint("docs_assets", __name__)
SWAGGER_UI_DIR = SWAGGER_UI_PY_ROOT / "static"
SWAGGER_UI_FILES = frozenset(("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png",
                              "favicon-16x16.png"))
# Endpoints that are plumbing (static files of the UI, the operator console's pages), not
# part of the API.
UNDOCUMENTED = frozenset(("static", "docs_assets.swagger_asset", "console.page",
                          "console.static"))
CHAT_EXAMPLE = "ChatCompletionHello"
CHAT_STREAM_EXAMPLE = "ChatCompletionHelloStream"
MESSAGES_EXAMPLE = "MessagesHello"
RESPONSES_EXAMPLE = "ResponsesHello"
EMBEDDINGS_EXAMPLE = "EmbeddingsHello"
COMPLETIONS_EXAMPLE = "CompletionsHello"
COMPLETIONS_STREAM_EXAMPLE = "CompletionsHelloStream"
_DOC_KEY = "neuroroute.openapi"


def create_api(app: Flask, settings: Settings) -> Api:
    """The app's smorest ``Api``: the document's info, the bearer scheme and the chat
    examples (for the first configured model, so "Try it out" works as it comes)."""
    api = Api(app, spec_kwargs={
        "title": "NeuroRoute", "version": "0.1.0", "openapi_version": OPENAPI_VERSION,
        "extra_plugins": [SchemaExtrasPlugin()],
        "info": {"description": "Self-hosted OpenAI-compatible LLM gateway. Every error "
                                "body is OpenAI's envelope `{\"error\": {message, type, "
                                "param, code}}`."}})
    api.spec.components.security_scheme(BEARER, {
        "type": "http", "scheme": "bearer",
        "description": "A NeuroRoute key: the master key or a client key (`sk-nr-…`). "
                       "`/admin/*` also takes the operator console's session cookie "
                       "(`POST /ui/session`) instead, with `X-CSRF-Token` on every change."})
    # Named in the stream event's contentSchema (a JSON string in `data`), so not found by
    # the schema resolver on its own.
    api.spec.components.schema("ChatCompletionChunk", schema=ChatCompletionChunkSchema)
    model = settings.deployments[0].name
    hello = {"model": model, "messages": [{"role": "user", "content": "Hello!"}]}
    api.spec.components.example(CHAT_EXAMPLE, {"summary": f"Say hello to {model}",
                                               "value": hello})
    api.spec.components.example(CHAT_STREAM_EXAMPLE, {
        "summary": "The same, streamed (server-sent events)",
        "value": {**hello, "stream": True, "stream_options": {"include_usage": True}}})
    api.spec.components.example(MESSAGES_EXAMPLE, {
        "summary": f"Say hello to {model} (Messages API)",
        "value": {"model": model, "max_tokens": 256, "messages": hello["messages"]}})
    api.spec.components.example(RESPONSES_EXAMPLE, {
        "summary": f"Say hello to {model} (Responses API)",
        "value": {"model": model, "input": "Hello!"}})
    _relayed_examples(api, settings)
    return api


def _relayed_examples(api: Api, settings: Settings) -> None:
    """Examples of embeddings and text completions, for the first model serving each."""
    def serving(family: str) -> str:
        deployments = settings.deployments
        return next((d.name for d in deployments if family in d.endpoints), deployments[0].name)

    model = serving("embeddings")
    api.spec.components.example(EMBEDDINGS_EXAMPLE, {
        "summary": f"Embed two texts with {model}",
        "value": {"model": model, "input": ["Hello!", "Bonjour !"], "encoding_format": "float"}})
    model = serving("completions")
    prompt = {"model": model, "prompt": "Say hello", "max_tokens": 16}
    api.spec.components.example(COMPLETIONS_EXAMPLE, {
        "summary": f"Complete a prompt with {model}", "value": prompt})
    api.spec.components.example(COMPLETIONS_STREAM_EXAMPLE, {
        "summary": "The same, streamed (server-sent events)",
        "value": {**prompt, "stream": True, "stream_options": {"include_usage": True}}})


@bp.get("/openapi.json")
@documented(bp.response(200, {"type": "object"}, description="This OpenAPI 3.1 document"))
def openapi_json() -> Response:
    """This OpenAPI document"""
    body: bytes | None = current_app.extensions.get(_DOC_KEY)
    if body is None:
        api: Any = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        body = current_app.extensions[_DOC_KEY] = orjson.dumps(api.spec.to_dict())
    return Response(body, mimetype="application/json")


_SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NeuroRoute API</title>
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/neuroroute-init.js"></script>
</body></html>
"""
# Relative URLs: the page also works under a path prefix of a reverse proxy.
_SWAGGER_INIT = """window.ui = SwaggerUIBundle({
  url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  persistAuthorization: true, displayRequestDuration: true, tryItOutEnabled: false
});
"""


@bp.get("/docs")
@documented(bp.response(200, {"type": "string"}, content_type="text/html",
                        description="Swagger UI (works offline)"))
def swagger_ui() -> Response:
    """Swagger UI for this document"""
    return _docs_response(Response(_SWAGGER_PAGE, mimetype="text/html"))


@assets.get("/docs/<path:filename>")
def swagger_asset(filename: str) -> Response:
    if filename == "neuroroute-init.js":
        return _docs_response(Response(_SWAGGER_INIT, mimetype="text/javascript"))
    if filename not in SWAGGER_UI_FILES:
        flask.abort(404)
    return _docs_response(send_from_directory(SWAGGER_UI_DIR, filename, max_age=86_400))


def _docs_response(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
