"""Usage accounting end to end on PostgreSQL: exact rows under concurrency across 2 workers,
a database outage, budgets across workers through Redis, and the flush at SIGTERM. The
exactness and SIGTERM tests also run on the embedded SQLite file (the default database),
whose sink writes from a native thread beside the gevent loop."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from app.db.models import UsageRow
from tests.procs import (
    MASTER_KEY,
    Proc,
    running,
    start_gateway,
    start_mock_upstream,
    start_tcp_proxy,
)

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
TOKENS = 12


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Proc]:
    with running(start_mock_upstream(tmp_path)) as proc:
        yield proc


@pytest.fixture(params=["sqlite", "postgresql"])
def usage_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of a gateway under test: SQLite file or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'usage.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def models(upstream: Proc) -> list[dict[str, Any]]:
    return [{"name": "up", "provider": "openai", "model": "u",
             "api_base": f"{upstream.url}/v1", "input_cost_per_mtok": 1000.0,
             "output_cost_per_mtok": 1000.0}]


def new_key(gw: Proc, **fields: Any) -> dict[str, Any]:
    resp = requests.post(f"{gw.url}/admin/keys", headers=ADMIN, timeout=10,
                         json={"name": "usage", **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def usage_rows(url: str) -> list[UsageRow]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(UsageRow)).all())  # type: ignore[arg-type]
    finally:
        engine.dispose()


def wait_rows(url: str, count: int, timeout: float = 15) -> list[Any]:
    deadline = time.monotonic() + timeout
    found: list[Any] = []
    while time.monotonic() < deadline:
        found = usage_rows(url)
        if len(found) >= count:
            break
        time.sleep(0.2)
    return found


async def mixed_load(url: str, key: str, count: int) -> dict[str, str]:
    """``count`` concurrent requests: non-stream, complete streams, streams the client drops.
    Returns request id -> kind."""
    kinds: dict[str, str] = {}

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        kind = ("plain", "stream", "cancel")[i % 3]
        rid = f"mix-{i}-{uuid.uuid4().hex[:6]}"
        kinds[rid] = kind
        body: dict[str, Any] = {"model": "up", "messages": [{"role": "user", "content": "hi"}],
                                "mock": {"tokens": TOKENS if kind != "cancel" else 400,
                                         "interval_ms": 0 if kind != "cancel" else 20}}
        if kind != "plain":
            body["stream"] = True
        async with session.post(f"{url}/v1/chat/completions", json=body, headers={
                "Authorization": f"Bearer {key}", "X-Request-ID": rid}) as resp:
            assert resp.status == 200, await resp.text()
            if kind == "cancel":
                await resp.content.readline()  # one event, then the client goes away
                resp.close()
            else:
                await resp.read()

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session, i) for i in range(count)))
    return kinds


def test_exactly_one_row_per_request_across_two_workers(usage_db: str, upstream: Proc,
                                                        tmp_path: Path) -> None:
    env = {"NEUROROUTE_DATABASE_URL": usage_db, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2"}
    with running(start_gateway(tmp_path, models(upstream), workers=2, env=env)) as gw:
        key = new_key(gw)
        kinds = asyncio.run(mixed_load(gw.url, key["key"], 60))
        found = wait_rows(usage_db, 60)
    assert len(found) == 60  # exactly: none lost, none twice
    by_id = {row.request_id: row for row in found}
    assert set(by_id) == set(kinds)
    complete = [by_id[rid] for rid, kind in kinds.items() if kind != "cancel"]
    assert sum(r.completion_tokens for r in complete) == 40 * TOKENS
    assert all(not r.estimated and r.status == 200 and r.key_id == key["id"] for r in complete)
    cancelled = [by_id[rid] for rid, kind in kinds.items() if kind == "cancel"]
    assert all(r.cancelled and r.estimated and r.stream for r in cancelled)
    assert all(r.cost > 0 for r in found)


def test_database_outage_keeps_serving_and_writes_later(pg_url: str, upstream: Proc,
                                                        tmp_path: Path) -> None:
    parsed = make_url(pg_url)
    proxy = start_tcp_proxy(tmp_path, f"{parsed.host}:{parsed.port or 5432}")
    port = int(proxy.url.rsplit(":", 1)[1])
    via_proxy = parsed.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    env = {"NEUROROUTE_DATABASE_URL": via_proxy, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2",
           "NEUROROUTE_SYNC_INTERVAL": "0.5"}
    try:
        with running(start_gateway(tmp_path, models(upstream), env=env)) as gw:
            key = new_key(gw)

            def ask() -> int:
                return requests.post(f"{gw.url}/v1/chat/completions", timeout=10, headers={
                    "Authorization": f"Bearer {key['key']}"}, json={
                    "model": "up", "messages": [{"role": "user", "content": "x"}]}).status_code

            assert [ask() for _ in range(5)] == [200] * 5
            assert len(wait_rows(pg_url, 5)) == 5
            proxy.stop()  # the database is gone for the gateway
            assert [ask() for _ in range(20)] == [200] * 20  # the cached key keeps working
            ready = requests.get(f"{gw.url}/health/ready", timeout=5).json()
            assert ready["status"] == "degraded"
            assert len(usage_rows(pg_url)) == 5  # nothing could be written meanwhile
            with running(start_tcp_proxy(tmp_path, f"{parsed.host}:{parsed.port or 5432}",
                                         port)):
                assert len(wait_rows(pg_url, 25, timeout=30)) == 25  # all of it, once back
    finally:
        proxy.stop()


def test_budget_holds_across_workers_with_redis(pg_url: str, upstream: Proc,
                                                tmp_path: Path) -> None:
    from tests.services import redis_url, unique_namespace

    env = {"NEUROROUTE_DATABASE_URL": pg_url, "NEUROROUTE_REDIS_URL": redis_url(),
           "NEUROROUTE_REDIS_NAMESPACE": unique_namespace()}
    with running(start_gateway(tmp_path, models(upstream), workers=2, env=env)) as gw:
        # One request costs about (8 + 12) tokens * 1000 USD / 1M = 0.02 USD.
        key = new_key(gw, max_budget=0.1, budget_period="daily")
        statuses, workers = [], {}
        for _ in range(20):
            resp = requests.post(f"{gw.url}/v1/chat/completions", timeout=10, headers={
                "Authorization": f"Bearer {key['key']}", "Connection": "close"}, json={
                "model": "up", "messages": [{"role": "user", "content": "x"}]})
            statuses.append(resp.status_code)
            workers.setdefault(resp.status_code, set()).add(
                resp.headers["X-NeuroRoute-Worker"])
            if resp.status_code == 429:
                body = resp.json()
        assert statuses.count(200) in (5, 6)  # 0.1 USD of 0.02 USD requests, at most 1 over
        assert statuses[statuses.index(429):] == [429] * (20 - statuses.index(429))
        assert body["error"]["code"] == "insufficient_quota"
        # Both workers refuse: concurrent rounds (which worker accepts a connection is the
        # kernel's choice, so rounds repeat until both have answered, bounded).
        refusers = set(workers[429])
        for _ in range(10):
            if len(refusers) == 2:
                break
            for status, worker in asyncio.run(burst(gw.url, key["key"], 20)):
                assert status == 429
                refusers.add(worker)
        assert len(refusers) == 2


async def burst(url: str, key: str, count: int) -> list[tuple[int, str]]:
    async def one(session: aiohttp.ClientSession, i: int) -> tuple[int, str]:
        await asyncio.sleep((i % 10) * 0.01)
        async with session.post(f"{url}/v1/chat/completions", headers={
                "Authorization": f"Bearer {key}"}, json={
                "model": "up", "messages": [{"role": "user", "content": "x"}]}) as resp:
            await resp.read()
            return resp.status, resp.headers["X-NeuroRoute-Worker"]

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(one(session, i) for i in range(count)))


def test_sigterm_writes_queued_usage(usage_db: str, upstream: Proc, tmp_path: Path) -> None:
    # A flush interval far longer than the test: only the shutdown flush can write them.
    env = {"NEUROROUTE_DATABASE_URL": usage_db, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "300"}
    gw = start_gateway(tmp_path, models(upstream), env=env)
    with running(gw):
        key = new_key(gw)
        for _ in range(15):
            assert requests.post(f"{gw.url}/v1/chat/completions", timeout=10, headers={
                "Authorization": f"Bearer {key['key']}"}, json={
                "model": "up", "messages": [{"role": "user", "content": "x"}]}).ok
        assert usage_rows(usage_db) == []
        assert gw.stop(signal.SIGTERM) == 0
    assert len(usage_rows(usage_db)) == 15


def test_usage_table_sums_match_admin_report(pg_url: str, upstream: Proc,
                                             tmp_path: Path) -> None:
    env = {"NEUROROUTE_DATABASE_URL": pg_url, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2"}
    with running(start_gateway(tmp_path, models(upstream), env=env)) as gw:
        key = new_key(gw)
        for _ in range(4):
            requests.post(f"{gw.url}/v1/chat/completions", timeout=10, headers={
                "Authorization": f"Bearer {key['key']}"}, json={
                "model": "up", "messages": [{"role": "user", "content": "x"}]})
        wait_rows(pg_url, 4)
        report = requests.get(f"{gw.url}/admin/usage?group_by=key", headers=ADMIN,
                              timeout=10).json()
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        cost = conn.execute(select(func.sum(UsageRow.cost))).scalar_one()
    engine.dispose()
    assert report["totals"]["requests"] == 4
    assert report["totals"]["cost"] == pytest.approx(cost)
    assert report["groups"][0]["group"] == key["id"]


def keep_alive_clients(gw: Proc, key: str, n: int) -> list[Any]:
    """``n`` connections that each made one request and now sit idle, kept alive."""
    import http.client

    host, port = gw.url.removeprefix("http://").split(":")
    conns = []
    for _ in range(n):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/v1/chat/completions", body=b'{"model": "up", "messages": '
                     b'[{"role": "user", "content": "x"}]}',
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Connection") != "close"
        resp.read()
        conns.append(conn)
    return conns


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stop_and_reload_do_not_wait_for_idle_keep_alive_clients(
        usage_db: str, upstream: Proc, tmp_path: Path, sig: int) -> None:
    """16 idle keep-alive connections (nginx keeps up to 256): a stop is not held up to the
    keep-alive or graceful timeout, and all their usage records are written (the flush
    interval is far longer than the test, so only the shutdown writes them)."""
    env = {"NEUROROUTE_DATABASE_URL": usage_db, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "300",
           "NEUROROUTE_GRACEFUL_TIMEOUT": "30", "NEUROROUTE_KEEPALIVE": "75"}
    gw = start_gateway(tmp_path, models(upstream), env=env)
    with running(gw):
        key = new_key(gw)["key"]
        conns = keep_alive_clients(gw, key, 16)
        started = time.monotonic()
        if sig == signal.SIGTERM:
            assert gw.stop(signal.SIGTERM, timeout=40) == 0
        else:  # a reload retires the old worker the same way: its records are written
            gw.popen.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 40
            while len(usage_rows(usage_db)) < 16 and time.monotonic() < deadline:
                time.sleep(0.1)
        took = time.monotonic() - started
        for conn in conns:
            conn.close()
        assert len(usage_rows(usage_db)) == 16
        assert took < 5, f"the stop waited {took:.1f} s for idle connections"


def test_a_stream_longer_than_the_graceful_timeout_is_recorded_before_the_kill(
        usage_db: str, upstream: Proc, tmp_path: Path) -> None:
    env = {"NEUROROUTE_DATABASE_URL": usage_db, "NEUROROUTE_USAGE_FLUSH_INTERVAL": "300",
           "NEUROROUTE_GRACEFUL_TIMEOUT": "4"}
    gw = start_gateway(tmp_path, models(upstream), env=env)
    with running(gw):
        key = new_key(gw)["key"]
        resp = requests.post(f"{gw.url}/v1/chat/completions", stream=True, timeout=30, headers={
            "Authorization": f"Bearer {key}"}, json={
            "model": "up", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "mock": {"tokens": 200, "interval_ms": 100}})  # 20 s of stream
        lines = resp.iter_lines()
        assert next(lines).startswith(b"data: ")
        assert gw.stop(signal.SIGTERM, timeout=15) == 0  # stopped at the graceful timeout
        resp.close()
    rows = usage_rows(usage_db)
    assert len(rows) == 1 and rows[0].stream is True


def test_budget_overshoot_stays_within_one_request_when_upstreams_bill_more(
        pg_url: str, upstream: Proc, tmp_path: Path) -> None:
    """Long system prompts the upstream bills at 2.5x the gateway's estimate, sent in
    concurrent waves: admitted requests stay within the budget plus one request (the
    reservation learns what the upstream bills, and starts conservative)."""
    from tests.services import redis_url, unique_namespace

    env = {"NEUROROUTE_DATABASE_URL": pg_url, "NEUROROUTE_REDIS_URL": redis_url(),
           "NEUROROUTE_REDIS_NAMESPACE": unique_namespace()}
    system = "Follow the house rules. " * 100  # 2,400 characters: the gateway estimates ~607
    billed = 1500  # what the upstream reports
    per_request = (billed * 1000 + 12 * 1000) / 1_000_000  # input + 12 completion tokens
    budget = 10.5 * per_request

    async def wave(url: str, key: str, size: int) -> list[int]:
        async def one(session: aiohttp.ClientSession) -> int:
            async with session.post(f"{url}/v1/chat/completions", headers={
                    "Authorization": f"Bearer {key}"}, json={
                    "model": "up", "mock": {"prompt_tokens": billed}, "max_tokens": 12,
                    "messages": [{"role": "system", "content": system},
                                 {"role": "user", "content": "x"}]}) as resp:
                await resp.read()
                return resp.status
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(one(session) for _ in range(size)))

    with running(start_gateway(tmp_path, models(upstream), workers=2, env=env)) as gw:
        key = new_key(gw, max_budget=budget, budget_period="daily")["key"]
        admitted = 0
        for _ in range(12):  # until a whole wave is refused
            statuses = asyncio.run(wave(gw.url, key, 4))
            admitted += statuses.count(200)
            if statuses.count(429) == len(statuses):
                break
            time.sleep(0.05)  # the settlements of the wave reach Redis
        assert 10 <= admitted <= 11, f"{admitted} admitted where 10.5 fit"
