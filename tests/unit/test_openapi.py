"""/openapi.json (flask-smorest) is a valid OpenAPI 3.1 document covering every endpoint and
every error status; /docs serves Swagger UI 5 offline."""

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app import create_app
from app.api.docs import UNDOCUMENTED
from app.api.spec import ERROR_RESPONSES
from app.schemas.chat import MAX_OUTPUT_TOKENS
from app.schemas.ops import EffectiveConfigSchema, RoutingReportSchema
from tests.conftest import AUTH, SettingsFactory


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def document(client: FlaskClient) -> dict[str, Any]:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items()
            for method, op in ops.items() if method != "parameters"]


def test_document_is_valid_openapi(client: FlaskClient) -> None:
    doc = document(client)
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "Error" in doc["components"]["schemas"]


def test_every_route_is_documented(app: Flask, client: FlaskClient) -> None:
    doc = document(client)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = openapi_path(rule.rule)
        assert path in doc["paths"], f"{rule.rule} ({rule.endpoint}) missing from /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"][path][method.lower()]
            assert {"414", "431", "500"} <= set(op["responses"]), (path, method)
            if path.startswith(("/v1/", "/admin/")):
                assert op["security"] == [{"bearerAuth": []}]
                # Anthropic's clients get its status for an unavailable service: 529
                unavailable = "529" if path.startswith("/v1/messages") else "503"
                assert {"401", "429", unavailable} <= set(op["responses"]), (path, method)
            if path.startswith("/admin/"):
                assert "403" in op["responses"]
            if "requestBody" in op:
                assert {"400", "413", "415"} <= set(op["responses"]), (path, method)
            if op.get("parameters") and any(p["in"] == "query" for p in op["parameters"]):
                assert "400" in op["responses"], (path, method)


def test_every_error_is_the_envelope_and_every_status_is_used(client: FlaskClient) -> None:
    doc = document(client)
    used: set[str] = set()
    for path, _, op in operations(doc):
        for status, response in op["responses"].items():
            if path == "/health/ready" and status == "503":
                continue  # "not ready" is the readiness report itself, for load balancers
            if int(status) >= 400:
                used.add(status)
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    response = doc["components"]["responses"][name]
                schema = response["content"]["application/json"]["schema"]
                # The Messages API answers in Anthropic's shape, except Gunicorn's own errors
                name = "AnthropicError" if path.startswith("/v1/messages") and status not in (
                    "414", "431") else "Error"
                assert schema == {"$ref": f"#/components/schemas/{name}"}, (status, response)
    assert {str(s) for s in ERROR_RESPONSES} <= used


def test_chat_request_schema_documents_validated_fields(client: FlaskClient) -> None:
    doc = document(client)
    request = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert {"model", "messages", "stream", "stream_options", "max_tokens"} <= set(
        request["properties"])
    assert set(request["required"]) == {"model", "messages"}
    assert request["properties"]["max_tokens"]["maximum"] == MAX_OUTPUT_TOKENS
    assert request["properties"]["seed"]["minimum"] == -(2**63)


def test_chat_examples_use_a_configured_model(client: FlaskClient) -> None:
    doc = document(client)
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    refs = [e["$ref"].rsplit("/", 1)[1] for e in body["application/json"]["examples"].values()]
    for name in refs:
        example = doc["components"]["examples"][name]["value"]
        assert example["model"] == "mock-fast"  # the first model of the test configuration
        resp = client.post("/v1/chat/completions", json=example, headers=AUTH)
        assert resp.status_code == 200, resp.get_data(as_text=True)


def test_chat_documents_its_headers_and_429(client: FlaskClient) -> None:
    op = document(client)["paths"]["/v1/chat/completions"]["post"]
    ok = op["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "text/event-stream"}
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-reset-tokens",
                 "x-neuroroute-cache", "x-neuroroute-cost", "x-neuroroute-deployment"):
        assert name in ok["headers"], name
    assert "Retry-After" in op["responses"]["429"]["headers"]
    assert {p["name"] for p in op["parameters"]} >= {"Cache-Control", "x-neuroroute-fallbacks"}


def test_config_and_routing_answers_are_fully_declared(app: Flask, client: FlaskClient) -> None:
    """The schemas dump what the services return: a field they do not declare would be lost
    (and undocumented), so each answer equals its source."""
    gw = app.extensions["neuroroute"]
    with app.test_request_context():
        raw_config = gw.settings.public_dict()
        raw_routing = gw.dispatcher.report()
    assert EffectiveConfigSchema().dump(raw_config) == raw_config
    assert RoutingReportSchema().dump(raw_routing) == raw_routing
    assert client.get("/admin/config", headers=AUTH).get_json() == raw_config


def test_swagger_ui_5_is_served_offline(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data
    assert b"<script>" not in page.data  # no inline script: the CSP allows 'self' only
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "neuroroute-init.js"):
        with client.get(f"/docs/{asset}") as resp:
            assert resp.status_code == 200 and len(resp.data) > 50, asset
            if asset == "swagger-ui-bundle.js":
                assert b'PACKAGE_VERSION:"5.' in resp.data  # Swagger UI 5 reads OpenAPI 3.1
    for path in ("/docs/../../etc/passwd", "/docs/swagger-editor.js", "/docs/nope.js"):
        with client.get(path) as resp:
            assert resp.status_code == 404, path
            assert resp.get_json()["error"]["code"] == "unknown_url"


def test_every_secured_operation_refuses_a_missing_key(make_settings: SettingsFactory) -> None:
    """What schemathesis' ignored_auth check would probe (see test_schemathesis.py)."""
    # Above the failed-authentication limit (429 after 20 by default) for this test only.
    client = create_app(make_settings(NEUROROUTE_AUTH_FAILURE_LIMIT="1000/minute")).test_client()
    doc = document(client)
    secured = [(path, method) for path, method, op in operations(doc) if op.get("security")]
    assert len(secured) > 25
    for path, method in secured:
        url = re.sub(r"\{[a-z_]+\}", "x", path)
        for headers in ({}, {"Authorization": "Bearer sk-nr-not-a-key"}):
            resp = client.open(url, method=method.upper(), headers=headers, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
            error = resp.get_json()["error"]
            if path.startswith("/v1/messages"):  # Anthropic's shape: a type, no code
                assert error["type"] == "authentication_error", error
            else:
                assert error["code"] in ("invalid_api_key", "missing_api_key")
