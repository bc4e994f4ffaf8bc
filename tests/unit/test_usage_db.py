"""Usage rows in the database, /admin/usage, key spend and budgets (SQLite, no Redis)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app
from app.auth.service import Principal
from app.db.models import UsageRow
from app.errors import InsufficientQuotaError
from app.usage.budgets import BudgetService, period_start
from tests.conftest import AUTH, chat_body
from tests.openai_spec import assert_valid

# 1000 USD per million tokens both ways: a request of ~10 + 5 tokens costs ~0.015 USD.
PRICED = [{"name": "priced", "provider": "mock", "model": "priced", "mock": {"tokens": 5},
           "input_cost_per_mtok": 1000.0, "output_cost_per_mtok": 1000.0},
          {"name": "free", "provider": "mock", "model": "free", "mock": {"tokens": 5}}]


@pytest.fixture
def papp(make_settings: Any) -> Flask:
    return create_app(make_settings(PRICED))


def ask(client: FlaskClient, key: str, model: str = "priced", **body: Any) -> Any:
    with client.post("/v1/chat/completions", json=chat_body(model, **body),
                     headers={"Authorization": f"Bearer {key}"}) as resp:
        resp.get_data()
        return resp


def flush(app: Flask) -> None:
    assert app.extensions["neuroroute"].usage_writer.flush(timeout=5)


def rows(app: Flask) -> list[UsageRow]:
    with app.extensions["neuroroute"].db.session() as session:
        return list(session.scalars(select(UsageRow).order_by(UsageRow.id)))


def new_key(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    resp = client.post("/admin/keys", headers=AUTH, json={"name": "k", **fields})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    return body


def test_usage_rows_are_written_with_cost_and_tokens(papp: Flask) -> None:
    client = papp.test_client()
    key = new_key(client)
    first = ask(client, key["key"])
    ask(client, key["key"], stream=True)
    ask(client, key["key"], model="free")
    flush(papp)
    written = rows(papp)
    assert [(r.model, r.stream, r.status) for r in written] == [
        ("priced", False, 200), ("priced", True, 200), ("free", False, 200)]
    assert all(r.key_id == key["id"] and r.completion_tokens == 5 for r in written)
    assert written[0].cost == pytest.approx(written[0].total_tokens * 1000 / 1e6)
    assert float(first.headers["x-neuroroute-cost"]) == pytest.approx(written[0].cost)
    assert written[2].cost == 0.0 and written[2].price_known is True


def test_admin_usage_totals_and_groups(papp: Flask) -> None:
    client = papp.test_client()
    a, b = new_key(client), new_key(client)
    for key, model in ((a, "priced"), (a, "free"), (b, "priced"), (b, "nope")):
        ask(client, key["key"], model=model)
    flush(papp)
    report = client.get("/admin/usage", headers=AUTH).get_json()
    assert report["totals"]["requests"] == 4 and report["totals"]["errors"] == 1
    by_model = {g["group"]: g for g in client.get(
        "/admin/usage?group_by=model", headers=AUTH).get_json()["groups"]}
    assert by_model["priced"]["requests"] == 2 and by_model["nope"]["errors"] == 1
    only_a = client.get(f"/admin/usage?key_id={a['id']}&group_by=day",
                        headers=AUTH).get_json()
    assert only_a["totals"]["requests"] == 2
    assert only_a["groups"][0]["group"] == datetime.now(UTC).strftime("%Y-%m-%d")
    future = client.get("/admin/usage?start=2999-01-01T00:00:00Z", headers=AUTH).get_json()
    assert future["totals"]["requests"] == 0
    bad = client.get("/admin/usage?group_by=planet", headers=AUTH)
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "group_by"


def test_key_objects_show_their_spend(papp: Flask) -> None:
    client = papp.test_client()
    key = new_key(client, max_budget=100, budget_period="monthly")
    ask(client, key["key"])
    flush(papp)
    shown = client.get(f"/admin/keys/{key['id']}", headers=AUTH).get_json()
    assert shown["spend"] == pytest.approx(rows(papp)[0].cost)
    listed = client.get("/admin/keys", headers=AUTH).get_json()["data"]
    assert [k["spend"] for k in listed if k["id"] == key["id"]] == [shown["spend"]]


def test_key_budget_refuses_once_spent(papp: Flask) -> None:
    client = papp.test_client()
    key = new_key(client, max_budget=0.02)  # room for about one request
    statuses = []
    for _ in range(4):
        resp = ask(client, key["key"])
        statuses.append(resp.status_code)
        flush(papp)
    assert statuses[0] == 200 and statuses[-1] == 429
    refused = ask(client, key["key"])
    body = refused.get_json()
    assert_valid(body, "ErrorResponse")
    assert body["error"]["type"] == "insufficient_quota"
    assert body["error"]["code"] == "insufficient_quota"
    assert "budget" in body["error"]["message"]
    # Spend is at most one request over the budget (the one admitted below it).
    flush(papp)
    spent = sum(r.cost for r in rows(papp))
    assert spent < 0.02 + 0.02


def test_team_budget_applies_to_its_keys(papp: Flask) -> None:
    client = papp.test_client()
    team = client.post("/admin/teams", headers=AUTH,
                       json={"name": "t", "max_budget": 0.0}).get_json()
    assert team["max_budget"] == 0.0
    key = new_key(client, team_id=team["id"])
    assert ask(client, key["key"]).status_code == 429
    other = new_key(client)
    assert ask(client, other["key"]).status_code == 200


def test_period_starts() -> None:
    now = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)  # a Thursday
    assert period_start("daily", now) == datetime(2026, 11, 26, tzinfo=UTC)
    assert period_start("weekly", now) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start("monthly", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_start("total", now) is None and period_start(None, now) is None


def test_local_reservations_stop_concurrent_requests_at_the_budget() -> None:
    """Without Redis, concurrent admissions in one worker see each other's reservations."""
    budgets = BudgetService(spend_since=lambda *_: 0.0, entity_budget=lambda *_: (None, None))
    principal = Principal("k", "member", max_budget=1.0)
    scopes = budgets.scopes(principal)
    now = datetime.now(UTC)
    admitted, refused = [], []
    lock = threading.Lock()

    def one() -> None:
        try:
            reservation = budgets.admit_local(scopes, 0.25, now)
        except InsufficientQuotaError:
            with lock:
                refused.append(1)
        else:
            with lock:
                admitted.append(reservation)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 4 and len(refused) == 16
    for reservation in admitted:  # each really cost less: room again
        budgets.settle_local(reservation, 0.1)
    assert budgets.admit_local(scopes, 0.25, now) is not None


def test_spend_query_counts_only_the_period(papp: Flask) -> None:
    from app.usage.store import spend_since

    client = papp.test_client()
    key = new_key(client)
    ask(client, key["key"])
    flush(papp)
    db = papp.extensions["neuroroute"].db
    total = spend_since(db, kind="key", entity_id=key["id"], since=None)
    assert total > 0
    assert spend_since(db, kind="key", entity_id=key["id"],
                       since=datetime(2999, 1, 1, tzinfo=UTC)) == 0.0
    with db.session() as session:
        assert session.execute(select(func.count(UsageRow.id))).scalar_one() == 1
