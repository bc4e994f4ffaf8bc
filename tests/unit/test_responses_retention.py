"""The response store's retention (a window on reads, the purge in the background and from the
CLI) and its failures (a write that fails is logged and the answer still sent; a read that
fails is a 503, never a "not found")."""

from __future__ import annotations

import logging
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from app import create_app
from app.chat.responses_store import STORE_FAILURES, ResponseStore
from app.db.models import ResponseRow
from app.settings import ConfigError
from tests.conftest import AUTH, SettingsFactory
from tests.unit.test_responses_api import create, events

DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Clock:
    """The app's response store on a clock the test moves."""
    fake = Clock()
    app.extensions["neuroroute"].responses.store.clock = fake
    return fake


def store(app: Flask) -> ResponseStore:
    result: ResponseStore = app.extensions["neuroroute"].responses.store
    return result


def rows(app: Flask) -> int:
    with app.extensions["neuroroute"].db.session() as session:
        return int(session.scalar(select(func.count()).select_from(ResponseRow)) or 0)


def found(client: FlaskClient, response_id: str) -> bool:
    return client.get(f"/v1/responses/{response_id}", headers=AUTH).status_code == 200


def test_a_response_past_the_window_is_gone_before_and_after_the_purge(
        app: Flask, client: FlaskClient, clock: Clock) -> None:
    old = create(client)
    store(app).purge_thread.join()  # type: ignore[union-attr]  # the first write purges
    clock.now += 31 * DAY
    assert not found(client, old["id"])  # invisible at once...
    assert create(client, status=400, previous_response_id=old["id"])["error"]["code"] == \
        "previous_response_not_found"
    assert rows(app) == 1
    assert store(app).purge() == 1  # ...and deleted by the purge
    assert rows(app) == 0


def test_a_conversation_in_use_is_kept_whole(app: Flask, client: FlaskClient,
                                             clock: Clock) -> None:
    first = create(client)
    clock.now += 20 * DAY
    second = create(client, previous_response_id=first["id"])  # keeps its chain alive
    clock.now += 20 * DAY  # first: 40 days old, continued 20 days ago
    assert store(app).purge() == 0
    assert found(client, first["id"]) and found(client, second["id"])
    create(client, previous_response_id=second["id"])
    clock.now += 31 * DAY
    assert store(app).purge() == 3
    assert not found(client, second["id"])


def test_the_purge_runs_in_the_background_after_a_write_once_per_interval(
        app: Flask, client: FlaskClient, clock: Clock) -> None:
    responses = store(app)
    responses.batch = 2  # several batches
    responses.purge_interval = 40 * DAY
    for _ in range(5):
        create(client)
    first_purge = responses.purge_thread  # the first write of the process purges
    assert first_purge is not None
    first_purge.join()
    clock.now += 31 * DAY
    create(client)  # within the purge interval of the first: no new purge
    assert responses.purge_thread is first_purge and rows(app) == 6
    clock.now += 10 * DAY
    create(client)
    assert responses.purge_thread is not first_purge
    responses.purge_thread.join()  # type: ignore[union-attr]
    assert rows(app) == 2  # the five expired ones went; the two recent ones stay


def test_retention_zero_keeps_everything(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(NEUROROUTE_RESPONSES_RETENTION_DAYS="0"))
    fake = Clock()
    store(app).clock = fake
    client = app.test_client()
    old = create(client)
    fake.now += 3650 * DAY
    assert found(client, old["id"])
    assert store(app).purge() == 0 and store(app).purge_thread is None
    runner = app.test_cli_runner()
    assert "kept for ever" in runner.invoke(args=["responses", "purge"]).output


@pytest.mark.parametrize("value", ["-1", "soon", "1.5"])
def test_retention_must_be_a_whole_number_of_days(make_settings: SettingsFactory,
                                                  value: str) -> None:
    with pytest.raises(ConfigError, match="NEUROROUTE_RESPONSES_RETENTION_DAYS"):
        make_settings(NEUROROUTE_RESPONSES_RETENTION_DAYS=value)


def test_the_cli_purges(make_settings: SettingsFactory) -> None:
    app = create_app(make_settings(NEUROROUTE_RESPONSES_RETENTION_DAYS="7"))
    client = app.test_client()
    fake = Clock()
    store(app).clock = fake
    store(app).purge_interval = 1000 * DAY  # only the first write's purge runs by itself
    fake.now -= 8 * DAY
    old = create(client)
    store(app).purge_thread.join()  # type: ignore[union-attr]
    fake.now += 8 * DAY
    recent = create(client)
    store(app).clock = time.time  # the command's own process uses the real clock
    result = app.test_cli_runner().invoke(args=["responses", "purge"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 responses inactive for more than 7 days" in result.output
    assert not found(client, old["id"]) and found(client, recent["id"])
    assert app.extensions["neuroroute"].settings.public_dict()[
        "responses_retention_days"] == 7


def test_a_failed_write_is_logged_and_the_answer_still_sent(
        app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    with app.extensions["neuroroute"].db.engine.begin() as conn:
        conn.execute(text("DROP TABLE responses"))
    before = STORE_FAILURES._value.get()
    with caplog.at_level(logging.ERROR, logger="app.chat.responses_store"):
        answer = create(client)
        streamed = events(client)[-1]["response"]
    assert answer["status"] == streamed["status"] == "completed"
    assert STORE_FAILURES._value.get() == before + 2
    logged = [r for r in caplog.records if r.getMessage() == "response not stored"]
    assert [r.__dict__["response_id"] for r in logged] == [answer["id"], streamed["id"]]
    for resp in (client.get(f"/v1/responses/{answer['id']}", headers=AUTH),
                 client.post("/v1/responses", headers=AUTH, json={
                     "model": "mock-fast", "input": "x",
                     "previous_response_id": answer["id"]})):
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "response_store_unavailable"



def test_a_conversations_earlier_responses_are_refreshed_at_most_hourly(
        app: Flask, client: FlaskClient, clock: Clock) -> None:
    def active_at(response_id: str) -> float:
        with app.extensions["neuroroute"].db.session() as session:
            row = session.get(ResponseRow, response_id)
            assert row is not None
            return row.active_at.timestamp()

    first = create(client)
    started = clock.now
    clock.now += 600
    second = create(client, previous_response_id=first["id"])
    assert active_at(first["id"]) == pytest.approx(started)  # recent enough: not rewritten
    clock.now += 3601  # the second is now more than an hour old too
    create(client, previous_response_id=second["id"])
    assert active_at(first["id"]) == active_at(second["id"]) == pytest.approx(clock.now)
