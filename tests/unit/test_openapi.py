"""/openapi.json is a valid OpenAPI 3.1 document covering every endpoint; /docs works offline."""

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.api.docs import UNDOCUMENTED


def openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_document_is_valid_openapi(client: FlaskClient) -> None:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "Error" in doc["components"]["schemas"]


def test_every_route_is_documented(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = openapi_path(rule.rule)
        assert path in doc["paths"], f"{rule.rule} ({rule.endpoint}) missing from /openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"][path][method.lower()]
            if path.startswith(("/v1/", "/admin/")):
                assert op["security"] == [{"bearerAuth": []}]
                assert "401" in op["responses"]


def test_chat_request_schema_documents_validated_fields(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    props = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert {"model", "messages", "stream", "stream_options", "max_tokens"} <= set(props)
    assert set(doc["components"]["schemas"]["ChatCompletionRequest"]["required"]) == {
        "model", "messages"}


def test_swagger_ui_is_served_offline(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer-neuroroute.js"):
        with client.get(f"/docs/{asset}") as resp:
            assert resp.status_code == 200 and len(resp.data) > 50, asset
    with client.get("/docs/../../etc/passwd") as resp:
        assert resp.status_code == 404


def test_chat_documents_its_headers_and_429(client: FlaskClient) -> None:
    op = client.get("/openapi.json").get_json()["paths"]["/v1/chat/completions"]["post"]
    headers = op["responses"]["200"]["headers"]
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-reset-tokens",
                 "x-neuroroute-cache", "x-neuroroute-cost", "x-neuroroute-deployment"):
        assert name in headers, name
    assert "Retry-After" in op["responses"]["429"]["headers"]
    assert {p["name"] for p in op["parameters"]} >= {"Cache-Control", "x-neuroroute-fallbacks"}
