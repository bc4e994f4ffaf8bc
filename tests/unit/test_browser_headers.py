"""Security headers on every answer; CORS (off by default, NEUROROUTE_CORS_ORIGINS) with
preflights answered without a key, streams and errors included."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.http_headers import API_CSP, DOCS_CSP, EXPOSED_HEADERS
from app.settings import ConfigError
from tests.conftest import AUTH, SettingsFactory, chat_body

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


@pytest.fixture
def cors_client(make_settings: SettingsFactory) -> FlaskClient:
    settings = make_settings(NEUROROUTE_CORS_ORIGINS=f"{ORIGIN}, http://localhost:3000")
    return create_app(settings).test_client()


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/health/live", {}),
    ("GET", "/v1/models", {"headers": AUTH}),
    ("GET", "/v1/models", {}),  # 401
    ("GET", "/nowhere", {}),  # 404
    ("POST", "/v1/chat/completions", {"headers": AUTH, "json": chat_body(stream=True)}),
])
def test_security_headers_on_every_answer(client: FlaskClient, method: str, path: str,
                                          kwargs: dict[str, object]) -> None:
    with client.open(path, method=method, **kwargs) as resp:  # type: ignore[arg-type]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Content-Security-Policy"] == API_CSP
        assert "Server" not in resp.headers


def test_docs_get_a_csp_that_lets_swagger_ui_run_offline(client: FlaskClient) -> None:
    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/neuroroute-init.js"):
        with client.get(path) as resp:
            assert resp.headers["Content-Security-Policy"] == DOCS_CSP, path
    assert "script-src 'self'" in DOCS_CSP and "connect-src 'self'" in DOCS_CSP
    assert "http" not in DOCS_CSP  # no CDN


def test_cors_is_off_by_default(client: FlaskClient) -> None:
    resp = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = client.get("/v1/models", headers={**AUTH, "Origin": ORIGIN})
    assert resp.status_code == 200 and "Access-Control-Allow-Origin" not in resp.headers


def test_preflight_is_answered_without_a_key(cors_client: FlaskClient) -> None:
    for path in ("/v1/chat/completions", "/v1/models", "/admin/keys"):
        resp = cors_client.options(path, headers=PREFLIGHT)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = {h.strip().lower()
                   for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]


def test_cors_answers_streams_and_errors_and_exposes_headers(cors_client: FlaskClient) -> None:
    with cors_client.post("/v1/chat/completions", json=chat_body(stream=True),
                          headers={**AUTH, "Origin": ORIGIN}) as resp:
        assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
        assert set(EXPOSED_HEADERS) <= exposed
        assert {"X-Request-ID", "x-ratelimit-remaining-requests",
                "x-neuroroute-deployment"} <= exposed
        assert b"[DONE]" in resp.data
    resp = cors_client.get("/v1/models", headers={"Origin": ORIGIN})  # no key
    assert resp.status_code == 401 and resp.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_other_origins_get_no_cors_headers(cors_client: FlaskClient) -> None:
    resp = cors_client.options("/v1/chat/completions",
                               headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = cors_client.get("/v1/models", headers={**AUTH, "Origin": "https://evil.example"})
    assert resp.status_code == 200 and "Access-Control-Allow-Origin" not in resp.headers


def test_a_plain_options_request_still_needs_a_key(cors_client: FlaskClient) -> None:
    # Only a CORS preflight (Access-Control-Request-Method) skips authentication.
    assert cors_client.options("/admin/keys").status_code == 401


def test_cors_origins_setting(make_settings: SettingsFactory, client: FlaskClient) -> None:
    assert make_settings(NEUROROUTE_CORS_ORIGINS="*").cors_origins == ("*",)
    assert make_settings().cors_origins == ()
    for bad in ("app.example.com", "ftp://x.example", "https://x.example/path"):
        with pytest.raises(ConfigError, match="NEUROROUTE_CORS_ORIGINS"):
            make_settings(NEUROROUTE_CORS_ORIGINS=bad)
    assert client.get("/admin/config", headers=AUTH).get_json()["cors_origins"] == []
