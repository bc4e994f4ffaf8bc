"""The admin API through the app factory on SQLite: keys, users, teams, deployments, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AUTH, chat_body


class Admin:
    """Calls the admin API with the master key (or another key) and checks statuses."""

    def __init__(self, client: FlaskClient, headers: dict[str, str] = AUTH) -> None:
        self.client = client
        self.headers = headers

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        resp = self.client.open(path, method=method, headers=self.headers, **kwargs)
        assert resp.status_code == expect, resp.get_data(as_text=True)
        return resp.get_json()

    def create_key(self, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.call("POST", "/admin/keys", 201,
                                         json={"name": "k", **fields})
        return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(client: FlaskClient) -> Admin:
    return Admin(client)


def error_of(resp: Any) -> dict[str, Any]:
    err: dict[str, Any] = resp.get_json()["error"]
    return err


# -- keys ----------------------------------------------------------------------------------


def test_create_key_shows_it_once_and_it_works(admin: Admin, client: FlaskClient) -> None:
    created = admin.create_key(name="ci", rpm_limit=60, tpm_limit=1000, max_budget=12.5,
                               budget_period="monthly")
    key = created["key"]
    assert key.startswith("sk-nr-") and created["prefix"] == key[:12]
    assert created["status"] == "active" and created["role"] == "member"
    assert created["rpm_limit"] == 60 and created["budget_period"] == "monthly"
    fetched = admin.call("GET", f"/admin/keys/{created['id']}")
    assert "key" not in fetched and "key_hash" not in fetched
    listed = admin.call("GET", "/admin/keys")
    assert key not in str(listed)
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    resp = client.post("/v1/chat/completions", json=chat_body(), headers=bearer(key))
    assert resp.status_code == 200


def test_member_keys_get_403_on_admin(admin: Admin, client: FlaskClient) -> None:
    member = admin.create_key(role="member")["key"]
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/users"),
                         ("GET", "/admin/config"), ("GET", "/admin/audit")):
        resp = client.open(path, method=method, headers=bearer(member), json={})
        assert resp.status_code == 403, path
        assert error_of(resp)["code"] == "insufficient_permissions"


def test_admin_role_keys_can_administer(admin: Admin, client: FlaskClient) -> None:
    boss = Admin(client, bearer(admin.create_key(role="admin")["key"]))
    made = boss.create_key(name="made-by-admin-key")
    entries = admin.call("GET", f"/admin/audit?entity_id={made['id']}")["data"]
    assert entries[0]["actor"] != "master" and entries[0]["actor"].startswith("key_")


def test_allowlist_hides_and_refuses_other_models(admin: Admin, client: FlaskClient) -> None:
    key = admin.create_key(allowed_models=["mock-fast"])["key"]
    ids = [m["id"] for m in client.get("/v1/models", headers=bearer(key)).get_json()["data"]]
    assert ids == ["mock-fast"]
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test"), headers=bearer(key))
    assert resp.status_code == 404 and error_of(resp)["code"] == "model_not_found"
    assert client.get("/v1/models/gpt-test", headers=bearer(key)).status_code == 404


def test_revoke_is_immediate_on_this_worker(admin: Admin, client: FlaskClient) -> None:
    created = admin.create_key()
    assert client.get("/v1/models", headers=bearer(created["key"])).status_code == 200
    revoked = admin.call("POST", f"/admin/keys/{created['id']}/revoke")
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    resp = client.get("/v1/models", headers=bearer(created["key"]))
    assert resp.status_code == 401 and error_of(resp)["code"] == "api_key_revoked"
    assert "revoked" in error_of(resp)["message"]
    # Revoking again is harmless; editing or rotating a revoked key is a conflict.
    admin.call("POST", f"/admin/keys/{created['id']}/revoke")
    admin.call("PATCH", f"/admin/keys/{created['id']}", 409, json={"name": "x"})
    admin.call("POST", f"/admin/keys/{created['id']}/rotate", 409)


def test_rotate_replaces_the_secret(admin: Admin, client: FlaskClient) -> None:
    created = admin.create_key(allowed_models=["mock-fast"])
    rotated = admin.call("POST", f"/admin/keys/{created['id']}/rotate")
    assert rotated["id"] == created["id"] and rotated["key"] != created["key"]
    assert rotated["allowed_models"] == ["mock-fast"]
    assert client.get("/v1/models", headers=bearer(created["key"])).status_code == 401
    assert client.get("/v1/models", headers=bearer(rotated["key"])).status_code == 200


def test_update_key_fields_and_disable(admin: Admin, client: FlaskClient) -> None:
    created = admin.create_key()
    updated = admin.call("PATCH", f"/admin/keys/{created['id']}",
                         json={"allowed_models": ["gpt-test"], "rpm_limit": None,
                               "disabled": True})
    assert updated["allowed_models"] == ["gpt-test"] and updated["status"] == "disabled"
    resp = client.get("/v1/models", headers=bearer(created["key"]))
    assert resp.status_code == 401 and error_of(resp)["code"] == "api_key_disabled"
    admin.call("PATCH", f"/admin/keys/{created['id']}", json={"disabled": False})
    ids = [m["id"] for m in
           client.get("/v1/models", headers=bearer(created["key"])).get_json()["data"]]
    assert ids == ["gpt-test"]


def test_expired_key_is_401_expired(admin: Admin, client: FlaskClient, app: Flask) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    created = admin.create_key(expires_at=soon)
    from app.db.models import ApiKey
    from app.gateway import EXTENSION_KEY

    # Move the expiry into the past directly (the API refuses past dates).
    db = app.extensions[EXTENSION_KEY].db
    with db.session() as session:
        session.get(ApiKey, created["id"]).expires_at = datetime.now(UTC) - timedelta(days=1)
    app.extensions[EXTENSION_KEY].sync.refresh()  # as the sync loop would
    resp = client.get("/v1/models", headers=bearer(created["key"]))
    assert resp.status_code == 401 and error_of(resp)["code"] == "api_key_expired"
    assert admin.call("GET", f"/admin/keys/{created['id']}")["status"] == "expired"


@pytest.mark.parametrize(("body", "param", "code"), [
    ({}, "name", "missing_required_parameter"),
    ({"name": ""}, "name", "invalid_value"),
    ({"name": "k", "role": "owner"}, "role", "invalid_value"),
    ({"name": "k", "rpm_limit": "10"}, "rpm_limit", "invalid_value"),
    ({"name": "k", "rpm_limit": 0}, "rpm_limit", "invalid_value"),
    ({"name": "k", "max_budget": -1}, "max_budget", "invalid_value"),
    ({"name": "k", "budget_period": "hourly"}, "budget_period", "invalid_value"),
    ({"name": "k", "allowed_models": "mock-fast"}, "allowed_models", "invalid_value"),
    ({"name": "k", "expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at", "invalid_value"),
    ({"name": "k", "expires_at": "2999-01-01T00:00:00"}, "expires_at", "invalid_value"),
    ({"name": "k", "disabled": "yes"}, "disabled", "invalid_value"),
    ({"name": "k", "user_id": "usr_missing"}, "user_id", "invalid_value"),
    ({"name": "k", "team_id": "team_missing"}, "team_id", "invalid_value"),
    ({"name": "k", "colour": "red"}, "colour", "invalid_value"),
])
def test_key_validation_names_the_field(client: FlaskClient, body: dict[str, Any], param: str,
                                        code: str) -> None:
    resp = client.post("/admin/keys", json=body, headers=AUTH)
    assert resp.status_code == 400, resp.get_json()
    assert error_of(resp)["param"] == param and error_of(resp)["code"] == code


def test_non_json_body_is_415(client: FlaskClient) -> None:
    resp = client.post("/admin/keys", data="name=x", headers=AUTH)
    assert resp.status_code == 415


def test_unknown_ids_are_404(admin: Admin) -> None:
    for path in ("/admin/keys/key_nope", "/admin/users/usr_nope", "/admin/teams/team_nope",
                 "/admin/deployments/dep_nope"):
        admin.call("GET", path, 404)
    admin.call("POST", "/admin/keys/key_nope/revoke", 404)


def test_pagination_and_filters(admin: Admin) -> None:
    ids = [admin.create_key(name=f"k{i}", role="admin" if i % 2 else "member")["id"]
           for i in range(5)]
    first = admin.call("GET", "/admin/keys?limit=2")
    assert [k["id"] for k in first["data"]] == ids[:2] and first["has_more"]
    second = admin.call("GET", f"/admin/keys?limit=2&after={first['last_id']}")
    assert [k["id"] for k in second["data"]] == ids[2:4]
    last = admin.call("GET", f"/admin/keys?limit=2&after={second['last_id']}")
    assert [k["id"] for k in last["data"]] == ids[4:] and not last["has_more"]
    admins = admin.call("GET", "/admin/keys?role=admin")["data"]
    assert [k["id"] for k in admins] == [ids[1], ids[3]]
    admin.call("POST", f"/admin/keys/{ids[0]}/revoke")
    assert [k["id"] for k in admin.call("GET", "/admin/keys?status=revoked")["data"]] == ids[:1]
    assert len(admin.call("GET", "/admin/keys?status=active")["data"]) == 4
    for bad in ("limit=0", "limit=101", "limit=x", "status=gone", "role=x", "bogus=1"):
        resp = admin.client.get(f"/admin/keys?{bad}", headers=AUTH)
        assert resp.status_code == 400 and error_of(resp)["param"] == bad.split("=")[0]


# -- users and teams -----------------------------------------------------------------------


def test_users_and_teams_crud(admin: Admin, client: FlaskClient) -> None:
    team = admin.call("POST", "/admin/teams", 201, json={"name": "search"})
    admin.call("POST", "/admin/teams", 409, json={"name": "search"})
    user = admin.call("POST", "/admin/users", 201,
                      json={"email": "ada@example.com", "name": "Ada", "team_id": team["id"]})
    assert user["role"] == "member" and user["team_id"] == team["id"]
    dup = client.post("/admin/users", json={"email": "ada@example.com"}, headers=AUTH)
    assert dup.status_code == 409 and error_of(dup)["param"] == "email"
    bad = client.post("/admin/users", json={"email": "not-an-email"}, headers=AUTH)
    assert bad.status_code == 400 and error_of(bad)["param"] == "email"
    updated = admin.call("PATCH", f"/admin/users/{user['id']}", json={"role": "admin"})
    assert updated["role"] == "admin"
    assert admin.call("GET", f"/admin/users?team_id={team['id']}")["data"][0]["id"] == user["id"]
    assert admin.call("GET", "/admin/teams?name=search")["data"][0]["id"] == team["id"]
    renamed = admin.call("PATCH", f"/admin/teams/{team['id']}", json={"name": "ranking"})
    assert renamed["name"] == "ranking"

    key = admin.create_key(user_id=user["id"], team_id=team["id"])
    assert key["user_id"] == user["id"]
    # A user with a working key cannot be deleted; once it is revoked they can.
    resp = client.delete(f"/admin/users/{user['id']}", headers=AUTH)
    assert resp.status_code == 409 and error_of(resp)["code"] == "user_has_keys"
    admin.call("POST", f"/admin/keys/{key['id']}/revoke")
    admin.call("DELETE", f"/admin/users/{user['id']}", 204)
    admin.call("GET", f"/admin/users/{user['id']}", 404)
    assert admin.call("GET", f"/admin/keys/{key['id']}")["user_id"] is None
    # Deleting a team keeps its keys, without the team.
    admin.call("DELETE", f"/admin/teams/{team['id']}", 204)
    assert admin.call("GET", f"/admin/keys/{key['id']}")["team_id"] is None


# -- deployments ---------------------------------------------------------------------------


def test_deployment_crud_takes_effect_without_restart(admin: Admin, client: FlaskClient) -> None:
    created = admin.call("POST", "/admin/deployments", 201, json={
        "id": "db-mock", "name": "db-model", "provider": "mock", "model": "db-model",
        "mock": {"tokens": 3}})
    assert created["id"] == "db-mock"
    ids = [m["id"] for m in client.get("/v1/models", headers=AUTH).get_json()["data"]]
    assert "db-model" in ids
    resp = client.post("/v1/chat/completions", json=chat_body("db-model"), headers=AUTH)
    assert resp.status_code == 200 and resp.headers["x-neuroroute-deployment"] == "db-mock"
    assert resp.get_json()["usage"]["completion_tokens"] == 3

    admin.call("PATCH", "/admin/deployments/db-mock", json={"mock": {"tokens": 4}})
    resp = client.post("/v1/chat/completions", json=chat_body("db-model"), headers=AUTH)
    assert resp.get_json()["usage"]["completion_tokens"] == 4

    admin.call("DELETE", "/admin/deployments/db-mock", 204)
    resp = client.post("/v1/chat/completions", json=chat_body("db-model"), headers=AUTH)
    assert resp.status_code == 404


def test_deployment_secrets_are_write_only(admin: Admin) -> None:
    created = admin.call("POST", "/admin/deployments", 201, json={
        "name": "remote", "provider": "openai", "model": "gpt-x",
        "api_base": "http://127.0.0.1:9/v1/", "api_key": "sk-upstream-very-secret",
        "headers": {"X-Org": "org-secret"}})
    assert created["id"].startswith("dep_") and created["api_base"] == "http://127.0.0.1:9/v1"
    assert created["api_key"] == "<redacted>" and created["headers"] == {"X-Org": "<redacted>"}
    everything = [created, admin.call("GET", f"/admin/deployments/{created['id']}"),
                  admin.call("GET", "/admin/deployments"), admin.call("GET", "/admin/audit"),
                  admin.call("GET", "/admin/config")]
    updated = admin.call("PATCH", f"/admin/deployments/{created['id']}",
                         json={"api_key": "sk-upstream-rotated"})
    everything += [updated, admin.call("GET", "/admin/audit")]
    for body in everything:
        text = str(body)
        assert "very-secret" not in text and "org-secret" not in text and "rotated" not in text


@pytest.mark.parametrize(("body", "param"), [
    ({"provider": "mock", "model": "m"}, "name"),
    ({"name": "n", "provider": "carrier-pigeon", "model": "m"}, "provider"),
    ({"name": "n", "provider": "openai", "model": "m"}, "api_base"),
    ({"name": "n", "provider": "mock", "model": "m", "api_base": "http://x.test"}, "api_base"),
    ({"name": "n", "provider": "openai", "model": "m", "api_base": "ftp://x"}, "api_base"),
    ({"name": "n", "provider": "mock", "model": "m", "weight": 0}, "weight"),
    ({"name": "n", "provider": "mock", "model": "m", "mock": {"tokens": 0}}, "mock.tokens"),
    ({"name": "n", "provider": "openai", "model": "m", "api_base": "http://h.test",
      "api_key": "os.environ/OPENAI_API_KEY"}, "api_key"),
])
def test_deployment_validation_names_the_field(client: FlaskClient, body: dict[str, Any],
                                               param: str) -> None:
    resp = client.post("/admin/deployments", json=body, headers=AUTH)
    assert resp.status_code == 400 and error_of(resp)["param"] == param


def test_deployment_ids_are_unique_across_yaml_and_db(admin: Admin, client: FlaskClient) -> None:
    body = {"id": "mock-fast#0", "name": "x", "provider": "mock", "model": "x"}
    assert client.post("/admin/deployments", json=body, headers=AUTH).status_code == 409
    body["id"] = "mine"
    admin.call("POST", "/admin/deployments", 201, json=body)
    admin.call("POST", "/admin/deployments", 409, json=body)


def test_update_deployment_checks_the_combination(admin: Admin, client: FlaskClient) -> None:
    admin.call("POST", "/admin/deployments", 201,
               json={"id": "d1", "name": "d1", "provider": "mock", "model": "m"})
    resp = client.patch("/admin/deployments/d1", json={"provider": "openai"}, headers=AUTH)
    assert resp.status_code == 400 and error_of(resp)["param"] == "api_base"
    # The failed change was rolled back.
    assert admin.call("GET", "/admin/deployments/d1")["provider"] == "mock"


# -- audit ---------------------------------------------------------------------------------


def test_every_admin_change_is_audited(admin: Admin) -> None:
    key = admin.create_key(name="audited")
    admin.call("PATCH", f"/admin/keys/{key['id']}", json={"name": "renamed"})
    admin.call("POST", f"/admin/keys/{key['id']}/rotate")
    admin.call("POST", f"/admin/keys/{key['id']}/revoke")
    entries = admin.call("GET", f"/admin/audit?entity=api_key&entity_id={key['id']}")["data"]
    assert [e["action"] for e in entries] == ["create", "update", "rotate", "revoke"]
    assert all(e["actor"] == "master" for e in entries)
    assert entries[1]["before"]["name"] == "audited" and entries[1]["after"]["name"] == "renamed"
    assert entries[2]["before"]["prefix"] != entries[2]["after"]["prefix"]
    assert all("key_hash" not in str(e) and key["key"] not in str(e) for e in entries)
    page = admin.call("GET", "/admin/audit?limit=1&action=revoke")
    assert len(page["data"]) == 1 and page["data"][0]["action"] == "revoke"
    after = admin.call("GET", f"/admin/audit?after={entries[2]['id']}&entity_id={key['id']}")
    assert [e["action"] for e in after["data"]] == ["revoke"]


def test_stored_deployment_joins_a_yaml_group(admin: Admin, app: Flask) -> None:
    from app.gateway import EXTENSION_KEY

    admin.call("POST", "/admin/deployments", 201, json={
        "id": "mock-fast-extra", "name": "mock-fast", "provider": "mock", "model": "mock-fast",
        "weight": 3})
    group = app.extensions[EXTENSION_KEY].registry.get("mock-fast")
    assert [p.deployment.id for p in group.providers] == ["mock-fast#0", "mock-fast-extra"]
    assert group.weights == (1.0, 3.0)


def test_stored_deployments_take_every_models_field(admin: Admin, client: FlaskClient) -> None:
    """Provider, cache and other options round-trip like a YAML entry; secrets stay hidden."""
    created = admin.call("POST", "/admin/deployments", 201, json={
        "id": "sap-1", "name": "sap", "provider": "openai", "model": "gpt-4o",
        "api_base": "http://127.0.0.1:9/v2", "headers": {"AI-Resource-Group": "rg-1"},
        "auth": {"type": "oauth2_client_credentials", "token_url": "http://127.0.0.1:9/token",
                 "client_id": "cid", "client_secret": "very-secret"},
        "cache": {"ttl": 30, "scope": "global"}, "stream_usage": False})
    assert created["options"]["auth"]["client_secret"] == "<redacted>"
    assert created["options"]["cache"] == {"ttl": 30, "scope": "global"}
    gw = client.application.extensions["neuroroute"]
    [dep] = [p.deployment for p in gw.registry.providers() if p.deployment.id == "sap-1"]
    assert dep.auth is not None and dep.auth.client_secret == "very-secret"
    assert dep.cache is not None and dep.cache.scope == "global" and dep.stream_usage is False

    # A PATCH merges: what it does not name is kept (headers, auth), null removes.
    patched = admin.call("PATCH", "/admin/deployments/sap-1", json={"weight": 3, "cache": None})
    assert patched["weight"] == 3 and "cache" not in (patched["options"] or {})
    assert patched["headers"] == {"AI-Resource-Group": "<redacted>"}
    [dep] = [p.deployment for p in gw.registry.providers() if p.deployment.id == "sap-1"]
    assert dep.cache is None and dep.auth is not None and dep.headers["AI-Resource-Group"] == "rg-1"

    # The merged entry is validated as a whole; the id cannot change.
    err = client.patch("/admin/deployments/sap-1", headers=AUTH, json={"provider": "nope"})
    assert err.status_code == 400 and err.get_json()["error"]["param"] == "provider"
    err = client.patch("/admin/deployments/sap-1", headers=AUTH, json={"id": "other"})
    assert err.status_code == 400 and err.get_json()["error"]["param"] == "id"

    audit = admin.call("GET", "/admin/audit?entity=deployment&entity_id=sap-1")
    assert "very-secret" not in str(audit) and "rg-1" not in str(audit)
