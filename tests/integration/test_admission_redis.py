"""Admission in one script call: the Redis store against the in-memory one, on real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client

from app.admission.quota import (
    ADMITTED,
    LIMITED,
    OVER_BUDGET,
    UNSEEDED,
    Ask,
    BudgetAsk,
    LimitAsk,
    MemoryQuotaStore,
    Settlement,
)
from app.admission.redis_quota import RedisQuotaStore
from app.admission.service import REDIS_RETRY_S, Admission, QuotaConfig, QuotaExceeded
from app.admission.settler import Settler
from app.auth.service import Principal
from app.usage.budgets import BudgetService
from tests.procs import free_port, start_tcp_proxy
from tests.services import REDIS_HOST, REDIS_PORT, redis_url

pytestmark = pytest.mark.integration
STRATEGIES = ("fixed-window", "sliding-window-counter", "moving-window")


@pytest.fixture
def client() -> Iterator[redis_client.Redis]:
    conn = redis_client.Redis.from_url(redis_url())
    yield conn
    conn.close()


@pytest.fixture
def ns(client: redis_client.Redis) -> Iterator[str]:
    prefix = f"nrtest-adm-{uuid.uuid4().hex[:10]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def states(answer: Any) -> list[tuple[int, int]]:
    return [(s.limit, s.remaining) for s in answer.limits]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_redis_and_memory_give_the_same_answers(client: redis_client.Redis, ns: str,
                                               strategy: str) -> None:
    shared, local = RedisQuotaStore(client, strategy=strategy), MemoryQuotaStore(strategy)
    limits = (LimitAsk("requests", f"{ns}:r", 4, 1), LimitAsk("tokens", f"{ns}:t", 100, 30))
    now = int(time.time() * 1000)
    for step in range(7):
        a, b = shared.admit(Ask(limits), now + step), local.admit(limits, now + step)
        assert (a.status, a.index, states(a)) == (b.status, b.index, states(b))
    shared.settle(Settlement(extra=((f"{ns}:t", 7),)), now + 10)
    local.settle(((f"{ns}:t", 7),), now + 10)
    a, b = shared.admit(Ask(limits[1:]), now + 11), local.admit(limits[1:], now + 11)
    assert states(a) == states(b)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_refused_request_consumes_nothing(client: redis_client.Redis, ns: str,
                                            strategy: str) -> None:
    """A request refused by its TPM does not use an RPM slot, and the reverse."""
    store = RedisQuotaStore(client, strategy=strategy)
    now = int(time.time() * 1000)
    rpm, tpm = LimitAsk("requests", f"{ns}:r", 2, 1), LimitAsk("tokens", f"{ns}:t", 50, 60)
    refused = store.admit(Ask((rpm, tpm)), now)
    assert (refused.status, refused.index) == (LIMITED, 1)  # 60 tokens never fit in 50
    small = LimitAsk("tokens", f"{ns}:t", 50, 10)
    assert [store.admit(Ask((rpm, small)), now + i).status for i in range(3)] == \
        [ADMITTED, ADMITTED, LIMITED]  # both RPM slots were still free
    assert states(store.admit(Ask((small,)), now + 5)) == [(50, 20)]  # 2 x 10 charged


def test_budgets_are_seeded_checked_reserved_and_settled(client: redis_client.Redis,
                                                         ns: str) -> None:
    store = RedisQuotaStore(client)
    budget = BudgetAsk(f"{ns}:spend", 1.0, 3600)
    now = int(time.time() * 1000)
    answer = store.admit(Ask((), (budget,), 0.4), now)
    assert answer.status == UNSEEDED and answer.unseeded == (0,)
    store.seed(budget.key, 0.5, budget.ttl_s)
    assert store.admit(Ask((), (budget,), 0.4), now).spends == pytest.approx((0.9,))
    assert store.admit(Ask((), (budget,), 0.4), now).spends == pytest.approx((1.3,))
    assert store.admit(Ask((), (budget,), 0.4), now).status == OVER_BUDGET
    store.settle(Settlement(budgets=((budget.key, -0.6),)), now)  # real costs were lower
    assert store.admit(Ask((), (budget,), 0.1), now).spends == pytest.approx((0.8,))
    assert 0 < client.ttl(budget.key) <= 3600


def test_the_same_call_reads_breakers_and_the_cache_entry(client: redis_client.Redis,
                                                          ns: str) -> None:
    client.set(f"{ns}:open-a", "1234.5")
    client.set(f"{ns}:cache", b"\x00entry")
    store = RedisQuotaStore(client)
    answer = store.admit(Ask((), (), 0.0, (f"{ns}:open-a", f"{ns}:open-b"), f"{ns}:cache"),
                         int(time.time() * 1000))
    assert answer.breakers == {f"{ns}:open-a": 1234.5}
    assert answer.cache_entry == b"\x00entry"


def test_the_settler_sends_many_requests_settlements_in_one_call() -> None:
    calls: list[Settlement] = []
    settler = Settler(apply=calls.append, failed=lambda s, e: None)
    for _ in range(10):
        settler._queue.append(Settlement(extra=(("k:tokens", 3),), budgets=(("k:spend", -0.1),)))
    settler.drain()
    assert len(calls) == 1
    assert calls[0].extra == (("k:tokens", 30),)
    assert calls[0].budgets[0][0] == "k:spend"
    assert calls[0].budgets[0][1] == pytest.approx(-1.0)


def admission(url: str, ns: str) -> Admission:
    budgets = BudgetService(spend_since=lambda *_: 0.0, entity_budget=lambda *_: (None, None))
    conn = redis_client.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
    return Admission(config=QuotaConfig(default_rpm=4, namespace=ns), budgets=budgets,
                     memory=MemoryQuotaStore(), redis_store=RedisQuotaStore(conn))


def admitted(adm: Admission, principal: Principal, n: int) -> int:
    count = 0
    for _ in range(n):
        try:
            adm.admit(principal, tokens=1, reserve=lambda: 0.0)
            count += 1
        except QuotaExceeded:
            pass
    return count


def test_a_redis_outage_never_gives_a_worker_its_limit_again_and_recovery_merges(
        tmp_path: Path, client: redis_client.Redis, ns: str) -> None:
    """Limit 4: 2 admitted through Redis, then Redis is unreachable (its proxy stops): only
    2 more in memory (not 4 again); back on Redis, the 2 admitted meanwhile were added to
    the shared counter, which refuses the 5th."""
    port = free_port()
    target = f"{REDIS_HOST}:{REDIS_PORT}"
    # The limit is per fixed minute: start where the whole test fits in one window.
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.1)
    proxy = start_tcp_proxy(tmp_path, target, port)
    adm = admission(f"redis://127.0.0.1:{port}/0", ns)
    who = Principal("k1", "member")
    try:
        assert admitted(adm, who, 2) == 2
        proxy.stop()
        assert admitted(adm, who, 6) == 2  # a fresh in-memory count let 6 of 12 through
        assert adm.backend == "redis-unavailable"
        proxy = start_tcp_proxy(tmp_path, target, port)
        time.sleep(REDIS_RETRY_S)  # the documented bound: Redis is tried again after it
        assert admitted(adm, who, 3) == 0
        assert adm.backend == "redis"
        window = int(time.time() * 1000) // 60_000
        assert int(client.get(f"{ns}:rl:k1:requests:{window}") or 0) == 4
    finally:
        proxy.stop()
