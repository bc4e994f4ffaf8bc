"""The persistence layer on real PostgreSQL: migrations, the admin API, cross-worker sync."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app import create_app
from app.db import repo, schema
from app.db.engine import Database, build_engine
from app.db.models import Base
from app.schemas.common import INT32_MAX, INT64_MAX
from app.settings import load_settings
from tests.conftest import AUTH, DEFAULT_MODELS, MASTER_KEY, chat_body

TABLES = {"users", "teams", "api_keys", "deployments", "audit_log", "sync_versions",
          "usage_records", "responses", "alembic_version"}


def make_app(url: str, tmp_path: Path, **env: str) -> Any:
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"models": DEFAULT_MODELS}))
    settings = load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                              "NEUROROUTE_CONFIG": str(config),
                              "NEUROROUTE_DATABASE_URL": url, **env})
    return create_app(settings)


def test_migrations_upgrade_downgrade_round_trip(pg_url: str) -> None:
    engine = build_engine(pg_url)
    with pytest.raises(schema.SchemaNotCurrentError):
        schema.require_head(engine)
    schema.upgrade(pg_url)
    assert set(inspect(engine).get_table_names()) == TABLES
    schema.require_head(engine)
    schema.downgrade(pg_url, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    schema.upgrade(pg_url)
    schema.upgrade(pg_url)
    assert schema.current_revision(engine) == schema.head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_admin_api_and_keys_on_postgres(pg_url: str, tmp_path: Path) -> None:
    schema.upgrade(pg_url)
    client = make_app(pg_url, tmp_path).test_client()
    team = client.post("/admin/teams", json={"name": "t"}, headers=AUTH).get_json()
    created = client.post("/admin/keys", headers=AUTH, json={
        "name": "pg", "team_id": team["id"], "allowed_models": ["mock-fast"],
        "expires_at": "2999-01-01T00:00:00+02:00"}).get_json()
    assert created["expires_at"].startswith("2998-12-31T22:00:00")  # stored in UTC
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.post("/v1/chat/completions", json=chat_body(), headers=auth).status_code == 200
    assert client.post("/v1/chat/completions", json=chat_body("gpt-test"),
                       headers=auth).status_code == 404
    assert client.post("/admin/teams", json={"name": "t"}, headers=AUTH).status_code == 409
    client.post(f"/admin/keys/{created['id']}/revoke", headers=AUTH)
    resp = client.get("/v1/models", headers=auth)
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "api_key_revoked"
    audit = client.get("/admin/audit", headers=AUTH).get_json()["data"]
    assert [e["action"] for e in audit] == ["create", "create", "revoke"]


def test_two_workers_share_revocations_and_deployments(pg_url: str, tmp_path: Path) -> None:
    schema.upgrade(pg_url)
    a = make_app(pg_url, tmp_path, NEUROROUTE_SYNC_INTERVAL="0.2").test_client()
    b = make_app(pg_url, tmp_path, NEUROROUTE_SYNC_INTERVAL="0.2").test_client()
    created = a.post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert b.get("/v1/models", headers=auth).status_code == 200
    a.post(f"/admin/keys/{created['id']}/revoke", headers=AUTH)
    a.post("/admin/deployments", headers=AUTH,
           json={"name": "pg-model", "provider": "mock", "model": "pg-model"})
    time.sleep(0.25)
    assert b.get("/v1/models", headers=auth).status_code == 401
    assert b.post("/v1/chat/completions", json=chat_body("pg-model"),
                  headers=AUTH).status_code == 200


def test_concurrent_bumps_are_not_lost(pg_url: str) -> None:
    schema.upgrade(pg_url)
    db = Database(build_engine(pg_url, pool_size=8))
    with db.session() as session:
        start = repo.read_versions(session)[repo.KEYS]

    def bump_many() -> None:
        for _ in range(10):
            with db.session() as session:
                repo.bump(session, repo.KEYS)

    threads = [threading.Thread(target=bump_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as session:
        assert repo.read_versions(session)[repo.KEYS] == start + 80
    db.dispose()


GREEN_SCRIPT = """
import sys, time
from gevent import monkey; monkey.patch_all()
import gevent
from psycogreen.gevent import patch_psycopg
if sys.argv[2] == "patched":
    patch_psycopg()
from sqlalchemy import text
from app.db.engine import build_engine
engine = build_engine(sys.argv[1], pool_size=4)
def sleep():
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.4)"))
start = time.monotonic()
gevent.joinall([gevent.spawn(sleep) for _ in range(4)], raise_error=True)
print(round(time.monotonic() - start, 2))
"""


@pytest.mark.parametrize(("mode", "cooperative"), [("patched", True), ("unpatched", False)])
def test_psycogreen_makes_queries_yield_to_gevent(pg_url: str, mode: str,
                                                  cooperative: bool) -> None:
    """What gunicorn.conf.py's post_fork does: four 0.4 s queries overlap only when patched."""
    out = subprocess.run([sys.executable, "-c", GREEN_SCRIPT, pg_url, mode], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    elapsed = float(out.strip().splitlines()[-1])
    if cooperative:
        assert elapsed < 1.0, elapsed
    else:
        assert elapsed >= 1.6, elapsed


def test_hostile_admin_input_is_a_400_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """What PostgreSQL refuses (NUL in text and JSON, integers beyond a column) is refused
    by the schemas first: a 400 naming the field, not a 500 from the driver."""
    schema.upgrade(pg_url)
    client = make_app(pg_url, tmp_path).test_client()
    for path, body, param in (
            ("/admin/teams", {"name": "a\x00b"}, "name"),
            ("/admin/users", {"email": "a@example.com", "name": "\x00"}, "name"),
            ("/admin/keys", {"name": "k", "tpm_limit": INT32_MAX + 1}, "tpm_limit"),
            ("/admin/deployments", {"name": "d", "provider": "mock", "model": "m",
                                    "tier": "\x00"}, "tier")):
        resp = client.post(path, json=body, headers=AUTH)
        assert resp.status_code == 400, resp.get_data(as_text=True)
        assert resp.get_json()["error"]["param"] == param
    assert client.get("/admin/teams?name=a%00b", headers=AUTH).status_code == 400
    key = client.post("/admin/keys", json={"name": "k", "tpm_limit": INT32_MAX}, headers=AUTH)
    assert key.status_code == 201 and key.get_json()["tpm_limit"] == INT32_MAX
    dep = client.post("/admin/deployments", headers=AUTH, json={
        "name": "d", "provider": "mock", "model": "m", "rpm": INT64_MAX, "tpm": INT64_MAX})
    assert dep.status_code == 201 and dep.get_json()["options"]["rpm"] == INT64_MAX
    audit = client.get(f"/admin/audit?after={INT64_MAX}", headers=AUTH)
    assert audit.status_code == 200 and audit.get_json()["data"] == []
