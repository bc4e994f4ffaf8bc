"""The sync bound under a burst after an idle period, on PostgreSQL (its queries yield).

A worker that sat idle longer than ``NEUROROUTE_SYNC_INTERVAL`` must not answer any request
of a burst from its stale state while one request of the burst re-reads the sync counters:
that query yields to the other greenlets on PostgreSQL (SQLite's does not, which is why this
test runs on PostgreSQL). The changes are made out of band (straight in the database, as
another instance would), so only the sync check can tell the worker about them.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.db import repo
from app.db.schema import upgrade
from tests.procs import MASTER_KEY, Proc, running, start_gateway

pytestmark = pytest.mark.e2e

SYNC_INTERVAL = 1.0
BURST = 144
MODELS = [{"name": "mock-fast", "provider": "mock", "model": "mock-fast"}]


def simultaneous(gateway: Proc, method: str, path: str, key: str, *, n: int = BURST,
                 idle: float = 0.0, body: dict[str, Any] | None = None) -> list[int]:
    """Statuses of ``n`` requests sent at once on connections opened ``idle`` seconds before.

    The connections are opened first (the worker accepts them and waits for their requests),
    then every request is written in one tight loop, so they reach the worker as one burst.
    """
    host, port = gateway.url.removeprefix("http://").split(":")
    conns = [http.client.HTTPConnection(host, int(port), timeout=20) for _ in range(n)]
    for conn in conns:
        conn.connect()
    time.sleep(idle)
    payload = orjson.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for conn in conns:
        conn.request(method, path, body=payload, headers=headers)
    statuses = []
    for conn in conns:
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
        conn.close()
    return statuses


@pytest.fixture
def gateway(pg_url: str, tmp_path: Path) -> Iterator[Proc]:
    upgrade(pg_url)
    env = {"NEUROROUTE_DATABASE_URL": pg_url,
           "NEUROROUTE_SYNC_INTERVAL": str(SYNC_INTERVAL),
           "NEUROROUTE_DB_POOL_SIZE": "4", "NEUROROUTE_ACCESS_LOG": "false"}
    with running(start_gateway(tmp_path, MODELS, workers=1, env=env, migrate=False)) as proc:
        yield proc


@pytest.fixture
def db(pg_url: str) -> Iterator[Session]:
    engine = create_engine(pg_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def out_of_band(db: Session, change: Any) -> None:
    """Commit a change the way another instance would: the worker is not told."""
    change(db)
    db.commit()


def test_no_request_of_a_burst_after_idle_is_served_a_revoked_key(gateway: Proc,
                                                                  db: Session) -> None:
    key, plaintext = repo.create_key(db, actor="test", fields={"name": "burst"})
    db.commit()
    assert set(simultaneous(gateway, "GET", "/v1/models", plaintext, n=16)) == {200}  # cached
    out_of_band(db, lambda s: repo.revoke_key(s, key.id, actor="test"))
    # Idle for longer than the interval, then a burst: every request comes after the bound.
    statuses = simultaneous(gateway, "GET", "/v1/models", plaintext,
                            idle=SYNC_INTERVAL * 1.5 + 0.5)
    assert statuses.count(200) == 0, f"{statuses.count(200)} of {BURST} served a revoked key"
    assert set(statuses) == {401}


def test_no_request_of_a_burst_after_idle_is_refused_a_re_enabled_key(gateway: Proc,
                                                                      db: Session) -> None:
    key, plaintext = repo.create_key(db, actor="test", fields={"name": "off",
                                                               "disabled": True})
    db.commit()
    assert set(simultaneous(gateway, "GET", "/v1/models", plaintext, n=16)) == {401}
    out_of_band(db, lambda s: repo.update_key(s, key.id, actor="test",
                                              changes={"disabled": False}))
    statuses = simultaneous(gateway, "GET", "/v1/models", plaintext,
                            idle=SYNC_INTERVAL * 1.5 + 0.5)
    assert set(statuses) == {200}, f"{statuses.count(401)} of {BURST} refused a live key"


def test_stored_deployments_created_and_deleted_are_seen_by_the_whole_burst(
        gateway: Proc, db: Session) -> None:
    body = {"model": "fresh", "messages": [{"role": "user", "content": "hi"}]}
    assert set(simultaneous(gateway, "POST", "/v1/chat/completions", MASTER_KEY, n=16,
                            body=body)) == {404}
    out_of_band(db, lambda s: repo.create_deployment(
        s, actor="test", fields={"id": "fresh-1", "name": "fresh", "provider": "mock",
                                 "model": "fresh"}, reserved_ids=frozenset()))
    statuses = simultaneous(gateway, "POST", "/v1/chat/completions", MASTER_KEY,
                            idle=SYNC_INTERVAL * 1.5 + 0.5, body=body)
    assert set(statuses) == {200}, f"{statuses.count(404)} of {BURST} did not see it"
    out_of_band(db, lambda s: repo.delete_deployment(s, "fresh-1", actor="test"))
    statuses = simultaneous(gateway, "POST", "/v1/chat/completions", MASTER_KEY,
                            idle=SYNC_INTERVAL * 1.5 + 0.5, body=body)
    assert set(statuses) == {404}, f"{statuses.count(200)} of {BURST} still served it"
