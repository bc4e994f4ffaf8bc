"""Circuit breakers with an injectable clock: open, skip, half-open probe, close, reopen.

The scenarios take a ``make_breaker`` fixture; ``tests/integration/test_cooldown_redis.py``
runs the same scenarios against real Redis.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from app.routing.cooldown import Admission, CircuitBreaker, RedisCooldownStore
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.routing.state import RoutingState
from app.settings import CooldownPolicy, RetryPolicy, RoutingConfig
from tests.unit.routing.fakes import FakeClock, FakeProvider, dep, http_error, request

POLICY = CooldownPolicy(failures=3, window_s=10.0, cooldown_s=30.0)
BreakerFactory = Callable[[CooldownPolicy, FakeClock], CircuitBreaker]


@pytest.fixture
def make_breaker() -> BreakerFactory:
    return lambda policy, clock: CircuitBreaker(policy, clock=clock)


def admission(breaker: CircuitBreaker, dep_id: str) -> Admission:
    return breaker.admit(dep_id, breaker.open_until([dep_id]).get(dep_id))


def test_opens_after_n_failures_within_the_window(make_breaker: BreakerFactory) -> None:
    clock = FakeClock()
    breaker = make_breaker(POLICY, clock)
    assert not breaker.failure("a")
    clock.now += 6
    assert not breaker.failure("a")
    clock.now += 6  # the first failure has left the 10 s window
    assert not breaker.failure("a")
    assert admission(breaker, "a") is Admission.CLOSED
    assert breaker.failure("a")  # three within 10 s
    assert admission(breaker, "a") is Admission.OPEN
    view = breaker.view(["a", "b"])
    assert view["a"].state == "open" and view["a"].open_for_s == pytest.approx(30)
    assert view["b"].state == "closed"


def test_half_open_admits_one_probe_whose_success_closes(make_breaker: BreakerFactory) -> None:
    clock = FakeClock()
    breaker = make_breaker(POLICY, clock)
    for _ in range(3):
        breaker.failure("a")
    clock.now += 29.9
    assert admission(breaker, "a") is Admission.OPEN
    clock.now += 0.2
    assert breaker.view(["a"])["a"].state == "half_open"
    assert admission(breaker, "a") is Admission.PROBE
    assert admission(breaker, "a") is Admission.OPEN  # one probe at a time
    breaker.success("a", Admission.PROBE)
    assert admission(breaker, "a") is Admission.CLOSED
    assert breaker.view(["a"])["a"].recent_failures == 0


def test_a_failed_probe_reopens_for_another_cooldown(make_breaker: BreakerFactory) -> None:
    clock = FakeClock()
    breaker = make_breaker(POLICY, clock)
    for _ in range(3):
        breaker.failure("a")
    clock.now += 31
    assert admission(breaker, "a") is Admission.PROBE
    assert breaker.failure("a")
    assert admission(breaker, "a") is Admission.OPEN
    clock.now += 29
    assert admission(breaker, "a") is Admission.OPEN
    clock.now += 2
    assert admission(breaker, "a") is Admission.PROBE


def test_dispatcher_skips_an_open_deployment_then_probes_it(
        make_breaker: BreakerFactory) -> None:
    clock = FakeClock()
    a = FakeProvider(dep("a"), [http_error(500)] * 3)
    b = FakeProvider(dep("b"))
    config = RoutingConfig(strategy="round-robin", cooldown=POLICY)
    d = Dispatcher(registry=ModelRegistry([a, b]), routing=config,
                   state=RoutingState(clock=clock), breaker=make_breaker(POLICY, clock),
                   rng=random.Random(1), sleep=clock.sleep, clock=clock)
    served = [d.chat(request()) for _ in range(6)]
    assert all(o.deployment.id == "b" for o in served)
    assert len(a.calls) == 3  # opened after its third failure, skipped since
    clock.now += 31
    for _ in range(2):
        d.chat(request())
    assert len(a.calls) == 4  # the half-open probe went through (and succeeded)
    assert d.breaker.view(["a"])["a"].state == "closed"


def test_a_lone_deployment_is_still_tried_while_open(make_breaker: BreakerFactory) -> None:
    """The breaker moves traffic; with nowhere else to go it does not fail the request."""
    clock = FakeClock()
    a = FakeProvider(dep("a"), [http_error(500)] * 3)
    config = RoutingConfig(cooldown=POLICY, retry=RetryPolicy(retries=3))
    d = Dispatcher(registry=ModelRegistry([a]), routing=config,
                   state=RoutingState(clock=clock), breaker=make_breaker(POLICY, clock),
                   sleep=clock.sleep, clock=clock)
    outcome = d.chat(request())  # three failures open it, the final attempt succeeds
    assert outcome.attempts == 4
    assert d.chat(request()).deployment.id == "a"
    assert d.breaker.view(["a"])["a"].state == "closed"


def test_redis_down_falls_back_to_in_process_state() -> None:
    import redis

    clock = FakeClock()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                         retry=Retry(NoBackoff(), 0))
    breaker = CircuitBreaker(POLICY, store=RedisCooldownStore(client, prefix="t"), clock=clock)
    for _ in range(3):
        breaker.failure("a")  # the first call notices Redis is down; the rest stay local
    assert breaker.backend == "redis-unavailable"
    assert admission(breaker, "a") is Admission.OPEN
    clock.now += 31
    assert breaker.backend == "redis"  # tried again after a pause
