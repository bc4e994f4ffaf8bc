"""Two apps on one database behave like two workers: changes reach both within the interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine

from app import create_app
from app.db import repo
from app.db.models import ApiKey
from app.gateway import EXTENSION_KEY, Gateway
from tests.conftest import AUTH, SettingsFactory, chat_body

SYNC_INTERVAL = 0.2


def gw(app: Flask) -> Gateway:
    gateway: Gateway = app.extensions[EXTENSION_KEY]
    return gateway


@pytest.fixture
def workers(make_settings: SettingsFactory) -> tuple[FlaskClient, FlaskClient]:
    """Two independent apps (own caches, own registries) sharing one SQLite database."""
    settings = make_settings(NEUROROUTE_SYNC_INTERVAL=str(SYNC_INTERVAL),
                             NEUROROUTE_LAST_USED_FLUSH_INTERVAL=str(SYNC_INTERVAL))
    return create_app(settings).test_client(), create_app(settings).test_client()


def break_database(app: Flask, tmp_path: Path) -> None:
    """Simulate an outage: sessions now connect to a "database" that is a directory."""
    gw(app).db._factory.configure(bind=create_engine(f"sqlite:///{tmp_path}"))


def eventually(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout}s")


def test_revocation_reaches_the_other_worker_within_the_interval(
        workers: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = workers
    created = a.post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert b.get("/v1/models", headers=auth).status_code == 200  # now cached in b
    a.post(f"/admin/keys/{created['id']}/revoke", headers=AUTH)
    assert a.get("/v1/models", headers=auth).status_code == 401  # the acting worker: at once
    waited = eventually(lambda: b.get("/v1/models", headers=auth).status_code == 401,
                        timeout=SYNC_INTERVAL * 5)
    assert waited <= SYNC_INTERVAL + 0.2


def test_new_deployment_reaches_the_other_worker(
        workers: tuple[FlaskClient, FlaskClient]) -> None:
    a, b = workers
    assert b.post("/v1/chat/completions", json=chat_body("fresh"), headers=AUTH).status_code \
        == 404
    a.post("/admin/deployments", headers=AUTH,
           json={"name": "fresh", "provider": "mock", "model": "fresh"})
    eventually(lambda: b.post("/v1/chat/completions", json=chat_body("fresh"),
                              headers=AUTH).status_code == 200, timeout=SYNC_INTERVAL * 5)


def test_reload_keeps_providers_of_unchanged_deployments(app: Flask, client: FlaskClient) -> None:
    before = {p.deployment.id: p for p in gw(app).registry.providers()}
    client.post("/admin/deployments", headers=AUTH,
                json={"id": "extra", "name": "extra", "provider": "mock", "model": "m"})
    after = {p.deployment.id: p for p in gw(app).registry.providers()}
    assert set(after) == set(before) | {"extra"}
    assert all(after[i] is before[i] for i in before)
    assert gw(app).dispatcher.registry is gw(app).registry


def test_last_used_is_written_in_batches(workers: tuple[FlaskClient, FlaskClient]) -> None:
    a, _ = workers
    created = a.post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    a.get("/v1/models", headers=auth)
    assert a.get(f"/admin/keys/{created['id']}", headers=AUTH).get_json()["last_used_at"] is None

    def written() -> bool:
        a.get("/v1/models", headers=auth)  # requests drive the sync loop
        body = a.get(f"/admin/keys/{created['id']}", headers=AUTH).get_json()
        return body["last_used_at"] is not None

    eventually(written, timeout=SYNC_INTERVAL * 10)


def test_database_down_keeps_cached_keys_and_deployments(make_settings: SettingsFactory,
                                                         tmp_path: Path) -> None:
    app = create_app(make_settings(NEUROROUTE_SYNC_INTERVAL="0.05"))
    client = app.test_client()
    created = client.post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    client.post("/admin/deployments", headers=AUTH,
                json={"name": "stored", "provider": "mock", "model": "stored"})
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/v1/models", headers=auth).status_code == 200
    break_database(app, tmp_path)
    time.sleep(0.06)
    gw(app).authenticator.cache.clear()  # even a cold cache entry...
    resp = client.get("/v1/models", headers=AUTH)
    assert resp.status_code == 200 and "stored" in str(resp.get_json())
    assert not gw(app).sync.healthy
    # ...for a key that was never seen is a 503, never a silent pass.
    resp = client.get("/v1/models", headers={"Authorization": "Bearer sk-nr-" + "x" * 43})
    assert resp.status_code == 503


def test_stale_cache_survives_outage(make_settings: SettingsFactory, tmp_path: Path) -> None:
    app = create_app(make_settings(NEUROROUTE_KEY_CACHE_TTL="0.01"))
    client = app.test_client()
    created = client.post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/v1/models", headers=auth).status_code == 200
    break_database(app, tmp_path)
    time.sleep(0.02)  # the entry is stale; the database is gone; the key keeps working
    assert client.get("/v1/models", headers=auth).status_code == 200


def test_touch_last_used_never_moves_backwards(app: Flask) -> None:
    db = gw(app).db
    with db.session() as session:
        key, _ = repo.create_key(session, actor="test", fields={"name": "k"})
    later, earlier = datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    with db.session() as session:
        repo.touch_last_used(session, {key.id: later})
    with db.session() as session:
        repo.touch_last_used(session, {key.id: earlier})
    with db.session() as session:
        assert session.get(ApiKey, key.id).last_used_at == later  # type: ignore[union-attr]


def test_readiness_reports_a_database_outage_as_degraded(app: Flask, client: FlaskClient,
                                                        tmp_path: Path) -> None:
    ready = client.get("/health/ready").get_json()
    assert ready["status"] == "ready" and ready["checks"]["database"]["status"] == "ok"
    gw(app).db.engine = create_engine(f"sqlite:///{tmp_path}")  # a directory: unreadable
    resp = client.get("/health/ready")
    assert resp.status_code == 200 and resp.get_json()["status"] == "degraded"
    assert "database up" in resp.get_json()["checks"]["database"]["detail"]["error"]
