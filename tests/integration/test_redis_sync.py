"""Redis pub/sub on top of polling: changes reach other workers at once; Redis down = polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from app import create_app
from app.db import schema
from app.gateway import EXTENSION_KEY, Gateway
from app.settings import load_settings
from tests.conftest import AUTH, DEFAULT_MODELS, MASTER_KEY, chat_body
from tests.procs import free_port

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(pg_url: str, tmp_path: Path) -> Iterator[AppFactory]:
    """Apps ("workers") on one PostgreSQL schema; their listeners are stopped afterwards."""
    schema.upgrade(pg_url)
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"models": DEFAULT_MODELS}))
    made: list[Flask] = []

    def factory(**env: str) -> Flask:
        app = create_app(load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                                        "NEUROROUTE_CONFIG": str(config),
                                        "NEUROROUTE_DATABASE_URL": pg_url, **env}))
        made.append(app)
        return app

    yield factory
    for app in made:
        gw(app).sync.stop()
        gw(app).db.dispose()


def gw(app: Flask) -> Gateway:
    gateway: Gateway = app.extensions[EXTENSION_KEY]
    return gateway


def within(seconds: float, check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"not true within {seconds}s")


def status(app: Flask, path: str, key: str, body: dict[str, Any] | None = None) -> int:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    resp = client.get(path, headers=headers) if body is None else \
        client.post(path, headers=headers, json=body)
    return resp.status_code


def test_announced_changes_reach_other_workers_at_once(make_app: AppFactory,
                                                        redis_url: str) -> None:
    # Polling every 60 s: only the Redis ping can explain a change arriving in under 1 s.
    a = make_app(NEUROROUTE_REDIS_URL=redis_url, NEUROROUTE_SYNC_INTERVAL="60")
    b = make_app(NEUROROUTE_REDIS_URL=redis_url, NEUROROUTE_SYNC_INTERVAL="60")
    created = a.test_client().post("/admin/keys", json={"name": "k"}, headers=AUTH).get_json()
    assert status(b, "/v1/models", created["key"]) == 200  # b caches it, starts listening
    assert gw(b).sync.announcer is not None
    assert gw(b).sync.announcer.subscribed.wait(5)

    a.test_client().post(f"/admin/keys/{created['id']}/revoke", headers=AUTH)
    assert within(1.0, lambda: status(b, "/v1/models", created["key"]) == 401) < 1.0

    a.test_client().post("/admin/deployments", headers=AUTH,
                         json={"name": "pinged", "provider": "mock", "model": "pinged"})
    within(1.0, lambda: status(b, "/v1/chat/completions", MASTER_KEY,
                               chat_body("pinged")) == 200)


def test_redis_down_changes_still_arrive_by_polling(make_app: AppFactory) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    a = make_app(NEUROROUTE_REDIS_URL=dead, NEUROROUTE_SYNC_INTERVAL="0.2")
    b = make_app(NEUROROUTE_REDIS_URL=dead, NEUROROUTE_SYNC_INTERVAL="0.2")
    created = a.test_client().post("/admin/keys", json={"name": "k"}, headers=AUTH)
    assert created.status_code == 201  # publishing failed, the change did not
    key = created.get_json()
    assert status(b, "/v1/models", key["key"]) == 200
    revoke = a.test_client().post(f"/admin/keys/{key['id']}/revoke", headers=AUTH)
    assert revoke.status_code == 200
    within(1.0, lambda: status(b, "/v1/models", key["key"]) == 401)
