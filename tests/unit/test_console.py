"""The operator console over HTTP (app factory, SQLite): sign-in and its cookie, the admin API
on a session with CSRF, sessions of revoked / rotated / demoted keys, the failed-auth limit,
sessions across processes, sign-out, and the pages' files and headers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import parse_cookie

from app import create_app
from app.auth.sessions import CSRF_HEADER, SECURE_SESSION_COOKIE, SESSION_COOKIE
from app.http_headers import CONSOLE_CSP
from app.settings import ConfigError
from tests.conftest import AUTH, MASTER_KEY, SettingsFactory, chat_body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def set_cookie(resp: Any) -> dict[str, str]:
    """The session cookie's Set-Cookie attributes: name=value plus flags, lower-cased."""
    (header,) = [h for h in resp.headers.getlist("Set-Cookie") if "neuroroute_session" in h]
    name_value, *attrs = [part.strip() for part in header.split(";")]
    name, _, value = name_value.partition("=")
    out = {"name": name, "value": value}
    for attr in attrs:
        key, _, val = attr.partition("=")
        out[key.lower()] = val
    return out


def sign_in(client: FlaskClient, key: str = MASTER_KEY, **kwargs: Any) -> dict[str, Any]:
    resp = client.post("/ui/session", headers=bearer(key), **kwargs)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def create_key(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    resp = client.post("/admin/keys", headers=AUTH, json={"name": "k", **fields})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def assert_envelope(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    error: dict[str, Any] = resp.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code, error
    return error


# -- signing in ------------------------------------------------------------------------------


def test_sign_in_sets_an_http_only_strict_cookie_and_returns_the_csrf_token(
        client: FlaskClient) -> None:
    resp = client.post("/ui/session", headers=AUTH)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["signed_in"] is True and body["key_id"] == "master" and body["role"] == "admin"
    assert len(body["csrf_token"]) >= 32 and body["expires_at"]
    cookie = set_cookie(resp)
    assert cookie["name"] == SESSION_COOKIE  # plain HTTP: no __Host- prefix, not Secure
    assert "httponly" in cookie and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert "secure" not in cookie and cookie["max-age"] == str(8 * 3600)
    assert MASTER_KEY not in cookie["value"]


@pytest.mark.parametrize(("hops", "headers", "base_url", "secure"), [
    (1, {"X-Forwarded-Proto": "https"}, "http://localhost", True),  # TLS at a trusted proxy
    (0, {"X-Forwarded-Proto": "https"}, "http://localhost", False),  # an untrusted header
    (0, {}, "https://localhost", True),  # TLS to the gateway itself
    (1, {"X-Forwarded-Proto": "http"}, "http://localhost", False),
])
def test_the_cookie_is_secure_when_the_request_came_over_tls(
        make_settings: SettingsFactory, hops: int, headers: dict[str, str], base_url: str,
        secure: bool) -> None:
    app = create_app(make_settings(NEUROROUTE_TRUSTED_PROXY_HOPS=str(hops)))
    client = app.test_client()
    resp = client.post("/ui/session", headers={**AUTH, **headers}, base_url=base_url)
    cookie = set_cookie(resp)
    assert ("secure" in cookie) is secure
    assert cookie["name"] == (SECURE_SESSION_COOKIE if secure else SESSION_COOKIE)
    assert "httponly" in cookie and cookie["samesite"] == "Strict"
    # The session works over that same kind of connection.
    again = app.test_client(use_cookies=False)  # sends the Cookie header given here
    resp = again.get("/admin/keys", base_url=base_url,
                     headers={**headers, "Cookie": f"{cookie['name']}={cookie['value']}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_non_admin_keys_are_refused_at_sign_in(client: FlaskClient) -> None:
    member = create_key(client, role="member")
    resp = client.post("/ui/session", headers=bearer(member["key"]))
    error = assert_envelope(resp, 403, "insufficient_permissions")
    assert "admin keys" in error["message"] and "member" in error["message"]
    assert not resp.headers.getlist("Set-Cookie")
    admin = create_key(client, role="admin")
    assert sign_in(client, admin["key"])["key_id"] == admin["id"]


def test_the_key_may_come_as_x_api_key_like_the_apis(client: FlaskClient) -> None:
    resp = client.post("/ui/session", headers={"x-api-key": MASTER_KEY})
    assert resp.status_code == 200 and set_cookie(resp)["name"] == SESSION_COOKIE
    # A key sent that way is a key: the cookie beside it does not count.
    assert_envelope(client.get("/admin/keys", headers={"x-api-key": "sk-nr-not-a-key-0000000"}),
                    401, "invalid_api_key")


def test_sign_in_failures_count_toward_the_failed_authentication_limit(
        make_settings: SettingsFactory) -> None:
    client = create_app(make_settings(NEUROROUTE_AUTH_FAILURE_LIMIT="3/minute")).test_client()
    assert_envelope(client.post("/ui/session"), 401, "missing_api_key")
    for _ in range(2):
        assert_envelope(client.post("/ui/session", headers=bearer("sk-nr-wrong-key-1234567")),
                        401, "invalid_api_key")
    resp = client.post("/ui/session", headers=bearer("sk-nr-wrong-key-1234567"))
    assert_envelope(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["Retry-After"]) >= 1
    # The same counter as the API's: a bearer guess from this address is refused too.
    assert_envelope(client.get("/admin/keys", headers=bearer("sk-nr-guess-00000000000")), 429,
                    "rate_limit_exceeded")


# -- the admin API on a session --------------------------------------------------------------


def test_the_admin_api_takes_the_session_and_every_change_needs_the_csrf_token(
        client: FlaskClient) -> None:
    token = sign_in(client)["csrf_token"]
    assert client.get("/admin/keys").status_code == 200  # reads need no token
    assert client.get("/admin/usage?group_by=day").status_code == 200
    for headers in ({}, {CSRF_HEADER: ""}, {CSRF_HEADER: "not-the-token"}):
        resp = client.post("/admin/keys", json={"name": "x"}, headers=headers)
        error = assert_envelope(resp, 403, "csrf_token_invalid")
        assert CSRF_HEADER in error["message"]
    created = client.post("/admin/keys", json={"name": "x"}, headers={CSRF_HEADER: token})
    assert created.status_code == 201
    key_id = created.get_json()["id"]
    for method, path, body in (("PATCH", f"/admin/keys/{key_id}", {"rpm_limit": 5}),
                               ("POST", f"/admin/keys/{key_id}/rotate", None),
                               ("POST", f"/admin/keys/{key_id}/revoke", None),
                               ("DELETE", "/admin/users/usr_x", None)):
        assert_envelope(client.open(path, method=method, json=body), 403, "csrf_token_invalid")
    assert client.patch(f"/admin/keys/{key_id}", json={"rpm_limit": 5},
                        headers={CSRF_HEADER: token}).get_json()["rpm_limit"] == 5
    entries = client.get(f"/admin/audit?entity_id={key_id}").get_json()["data"]
    assert [e["actor"] for e in entries] == ["master", "master"]  # as with the bearer key


def test_bearer_requests_are_unchanged_by_a_session_cookie(client: FlaskClient) -> None:
    sign_in(client)  # the client now sends the master's session cookie with everything
    assert client.post("/admin/keys", json={"name": "b"}, headers=AUTH).status_code == 201
    member = create_key(client)
    # A member's bearer key is not lifted by the admin session beside it.
    resp = client.get("/admin/keys", headers=bearer(member["key"]))
    assert_envelope(resp, 403, "insufficient_permissions")
    # And /v1 never takes the cookie: it needs the key.
    assert_envelope(client.post("/v1/chat/completions", json=chat_body()), 401,
                    "missing_api_key")


def test_a_revoked_admin_keys_session_is_refused(app: Flask, client: FlaskClient) -> None:
    admin = create_key(client, role="admin")
    browser = app.test_client()
    sign_in(browser, admin["key"])
    assert browser.get("/admin/keys").status_code == 200
    assert client.post(f"/admin/keys/{admin['id']}/revoke", headers=AUTH).status_code == 200
    assert_envelope(browser.get("/admin/keys"), 401, "api_key_revoked")
    resp = browser.get("/ui/session")
    body = resp.get_json()
    assert body["signed_in"] is False and "revoked" in body["reason"]
    assert set_cookie(resp)["max-age"] == "0"  # the dead cookie is cleared
    assert browser.get("/ui/session").get_json() == {
        "object": "console_session", "signed_in": False}


def test_rotated_and_demoted_keys_end_their_sessions(make_settings: SettingsFactory) -> None:
    # The limit is low: a stale session must not count as key guessing.
    app = create_app(make_settings(NEUROROUTE_AUTH_FAILURE_LIMIT="1/minute"))
    client = app.test_client()
    rotated, demoted = create_key(client, role="admin"), create_key(client, role="admin")
    first, second = app.test_client(), app.test_client()
    sign_in(first, rotated["key"])
    sign_in(second, demoted["key"])
    client.post(f"/admin/keys/{rotated['id']}/rotate", headers=AUTH)
    client.patch(f"/admin/keys/{demoted['id']}", json={"role": "member"}, headers=AUTH)
    for _ in range(3):
        assert_envelope(first.get("/admin/keys"), 401, "invalid_session")
    assert_envelope(second.get("/admin/keys"), 403, "insufficient_permissions")
    assert second.get("/ui/session").get_json()["signed_in"] is False


def test_sessions_are_accepted_by_every_process_with_the_same_settings(
        make_settings: SettingsFactory) -> None:
    """Workers and instances are separate apps: nothing per process signs the cookie."""
    for env in ({}, {"NEUROROUTE_SECRET_KEY": "k" * 40}):
        one = create_app(make_settings(**env)).test_client()
        token = sign_in(one)["csrf_token"]
        cookie = one.get_cookie(SESSION_COOKIE)
        assert cookie is not None
        other = create_app(make_settings(**env)).test_client()
        other.set_cookie(SESSION_COOKIE, cookie.value)
        assert other.get("/admin/keys").status_code == 200
        assert other.post("/admin/teams", json={"name": f"t{len(env)}"},
                          headers={CSRF_HEADER: token}).status_code == 201
    changed = create_app(make_settings(NEUROROUTE_MASTER_KEY="sk-another-master")).test_client()
    changed.set_cookie(SESSION_COOKIE, cookie.value)
    assert_envelope(changed.get("/admin/keys"), 401, "invalid_session")


def test_a_tampered_cookie_is_refused_and_not_counted_as_a_guess(client: FlaskClient) -> None:
    sign_in(client)
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    client.set_cookie(SESSION_COOKIE, cookie.value[:-3] + "abc")
    assert_envelope(client.get("/admin/keys"), 401, "invalid_session")


def test_sign_out_needs_the_csrf_token_and_clears_the_cookie(client: FlaskClient) -> None:
    token = sign_in(client)["csrf_token"]
    assert_envelope(client.delete("/ui/session"), 403, "csrf_token_invalid")
    assert client.get("/admin/keys").status_code == 200  # still signed in
    resp = client.delete("/ui/session", headers={CSRF_HEADER: token})
    assert resp.status_code == 204 and set_cookie(resp)["max-age"] == "0"
    assert_envelope(client.get("/admin/keys"), 401, "missing_api_key")
    assert client.delete("/ui/session").status_code == 204  # signed out already: fine


def test_the_session_answer_says_who_is_signed_in(client: FlaskClient) -> None:
    assert client.get("/ui/session").get_json()["signed_in"] is False
    token = sign_in(client)["csrf_token"]
    body = client.get("/ui/session").get_json()
    assert body["signed_in"] is True and body["csrf_token"] == token


# -- settings --------------------------------------------------------------------------------


def test_secret_key_is_checked_and_redacted(make_settings: SettingsFactory) -> None:
    with pytest.raises(ConfigError, match="NEUROROUTE_SECRET_KEY"):
        make_settings(NEUROROUTE_SECRET_KEY="short")
    settings = make_settings(NEUROROUTE_SECRET_KEY="z" * 32, NEUROROUTE_CONSOLE_SESSION_TTL="60")
    public = settings.public_dict()
    assert public["secret_key"] == "<redacted>" and public["console_session_ttl"] == 60
    assert "z" * 32 not in str(public) and "z" * 32 not in repr(settings)
    client = create_app(settings).test_client()
    assert set_cookie(client.post("/ui/session", headers=AUTH))["max-age"] == "60"


# -- the pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/keys", "/ui/usage", "/ui/routing",
                                  "/ui/audit"])
def test_pages_are_one_shell_with_a_strict_csp_and_no_inline_script(
        client: FlaskClient, path: str) -> None:
    resp = client.get(path + "?start=2026-01-01")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.headers["Content-Security-Policy"] == CONSOLE_CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    html = resp.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # every script is a file
    assert " style=" not in html and "<style" not in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for url in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html):
        with client.get(url) as asset:
            assert asset.status_code == 200, url
            assert asset.headers["Content-Security-Policy"] == CONSOLE_CSP
            assert asset.headers["Cache-Control"] == "no-cache"


def test_every_static_file_is_served_with_its_type(client: FlaskClient) -> None:
    expected = {"app.js": "text/javascript", "api.js": "text/javascript",
                "dom.js": "text/javascript", "chart.js": "text/javascript",
                "pages/keys.js": "text/javascript", "pages/usage.js": "text/javascript",
                "pages/routing.js": "text/javascript", "pages/audit.js": "text/javascript",
                "console.css": "text/css", "favicon.svg": "image/svg+xml"}
    for name, mimetype in expected.items():
        with client.get(f"/ui/static/{name}") as resp:
            assert resp.status_code == 200 and resp.mimetype == mimetype, name
            text = resp.get_data(as_text=True)
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
            assert "https://" not in text and "innerHTML" not in text, name
    for path in ("/ui/static/nope.js", "/ui/static/../session.py", "/ui/elsewhere"):
        assert_envelope(client.get(path), 404, "unknown_url")


def test_the_shell_holds_no_data(client: FlaskClient) -> None:
    """The shell holds no data: without a session the script only shows the sign-in form."""
    html = client.get("/ui/keys").get_data(as_text=True)
    assert "key_" not in html and 'id="sign-in-form"' in html
    assert parse_cookie(client.get("/ui").headers.get("Set-Cookie", "")) == {}


def test_usage_can_be_filtered_by_deployment(make_settings: SettingsFactory) -> None:
    """The usage page draws each of the largest deployments' days with this filter."""
    models = [{"name": "m", "id": "m-a", "provider": "mock", "model": "m", "weight": 1},
              {"name": "n", "id": "n-a", "provider": "mock", "model": "n"}]
    app = create_app(make_settings(models))
    client = app.test_client()
    for model in ("m", "m", "n"):
        with client.post("/v1/chat/completions", json=chat_body(model), headers=AUTH) as resp:
            assert resp.status_code == 200
    assert app.extensions["neuroroute"].usage_writer.flush(timeout=5)
    report = client.get("/admin/usage?group_by=day&deployment=m-a", headers=AUTH).get_json()
    assert report["totals"]["requests"] == 2 and report["groups"][0]["requests"] == 2
    by_deployment = client.get("/admin/usage?group_by=deployment", headers=AUTH).get_json()
    assert {g["group"]: g["requests"] for g in by_deployment["groups"]} == {"m-a": 2, "n-a": 1}
