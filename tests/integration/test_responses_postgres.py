"""The response store on real PostgreSQL: the previous_response_id chain (one recursive query),
isolation between keys and teams, deletion and the purge."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import text

from app.db import schema
from tests.conftest import AUTH
from tests.integration.test_postgres import make_app
from tests.unit.test_responses_api import create, events, new_key

DAY = 86_400.0


def test_chain_isolation_and_purge_on_postgres(pg_url: str, tmp_path: Path) -> None:
    schema.upgrade(pg_url)
    app = make_app(pg_url, tmp_path)
    client: FlaskClient = app.test_client()
    gw = app.extensions["neuroroute"]
    sent: list[dict[str, Any]] = []
    provider = gw.registry.get("mock-fast").providers[0]
    original = provider.complete
    provider.complete = lambda request: sent.append(request.body) or original(request)

    alice, colleague = new_key(client, "alice", team="t1"), new_key(client, "colleague",
                                                                    team="t1")
    stranger = new_key(client, "stranger")
    first = create(client, alice, input="Zero \u0000 bytes and ünïcode")  # json keeps both
    second = events(client, alice, input="Two", previous_response_id=first["id"])[-1][
        "response"]
    third = create(client, colleague, input="Three", previous_response_id=second["id"])
    assert [m["content"] for m in sent[-1]["messages"] if m["role"] == "user"] == [
        "Zero \u0000 bytes and ünïcode", "Two", "Three"]
    assert client.get(f"/v1/responses/{first['id']}", headers=colleague).get_json() == first

    assert client.get(f"/v1/responses/{third['id']}", headers=stranger).status_code == 404
    assert create(client, stranger, 400, previous_response_id=third["id"])["error"][
        "code"] == "previous_response_not_found"
    assert client.delete(f"/v1/responses/{third['id']}", headers=stranger).status_code == 404
    assert client.get(f"/v1/responses/{third['id']}", headers=AUTH).status_code == 404

    items = client.get(f"/v1/responses/{second['id']}/input_items",
                       headers=colleague).get_json()
    assert [i["content"][0]["text"] for i in items["data"]] == ["Two"]
    assert client.delete(f"/v1/responses/{second['id']}", headers=colleague).status_code == 200
    assert create(client, alice, 400, previous_response_id=third["id"])["error"][
        "message"] == f"Previous response with id '{second['id']}' not found."

    store = gw.responses.store
    store.clock = lambda: time.time() + 31 * DAY
    assert store.purge() == 2  # first and third; second was deleted
    with gw.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM responses")).scalar() == 0
