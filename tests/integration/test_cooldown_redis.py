"""The circuit-breaker scenarios of tests/unit/routing/test_cooldown.py against real Redis.

Redis on 127.0.0.1:6379 (or NEUROROUTE_TEST_REDIS_URL) is required when CI=true; locally the
tests skip with a message when it is not running. Each test uses its own key prefix and
deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.routing.cooldown import Admission, CircuitBreaker, RedisCooldownStore, build_breaker
from app.settings import CooldownPolicy
from tests.unit.routing.fakes import FakeClock
from tests.unit.routing.test_cooldown import (  # noqa: F401 - collected here with Redis
    test_a_failed_probe_reopens_for_another_cooldown,
    test_a_lone_deployment_is_still_tried_while_open,
    test_dispatcher_skips_an_open_deployment_then_probes_it,
    test_half_open_admits_one_probe_whose_success_closes,
    test_opens_after_n_failures_within_the_window,
)

pytestmark = pytest.mark.integration
REDIS_URL = os.environ.get("NEUROROUTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_client_or_skip() -> Any:
    """A connected client; a failure under CI=true, a skip with a reason otherwise."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({exc}); start it to run this test"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return client


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis_client_or_skip()
    prefix = f"neuroroute-test-{uuid.uuid4().hex}"
    yield prefix
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def make_breaker(redis_prefix: str) -> Any:
    def factory(policy: CooldownPolicy, clock: FakeClock) -> CircuitBreaker:
        breaker = build_breaker(policy, redis_url=REDIS_URL, prefix=redis_prefix, clock=clock)
        assert isinstance(breaker.shared, RedisCooldownStore)
        return breaker

    return factory


def test_two_processes_share_one_breaker(make_breaker: Any) -> None:
    """Two breakers (as in two workers) over one Redis see the same state and one probe."""
    policy = CooldownPolicy(failures=2, window_s=10, cooldown_s=5)
    clock = FakeClock()
    worker_1, worker_2 = make_breaker(policy, clock), make_breaker(policy, clock)
    worker_1.failure("a")
    worker_2.failure("a")  # the second failure anywhere opens it everywhere
    assert worker_1.backend == "redis"
    for breaker in (worker_1, worker_2):
        assert breaker.admit("a", breaker.open_until(["a"]).get("a")) is Admission.OPEN
    clock.now += 6
    admissions = [b.admit("a", b.open_until(["a"]).get("a")) for b in (worker_1, worker_2)]
    assert admissions == [Admission.PROBE, Admission.OPEN]
    worker_1.success("a", Admission.PROBE)
    assert worker_2.view(["a"])["a"].state == "closed"
