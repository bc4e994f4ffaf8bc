"""The dispatcher: retries, backoff, fallbacks, context-window fallbacks, capacity, streams."""

from __future__ import annotations

import random
from typing import Any

import pytest

from app.errors import GatewayError, InvalidRequestError, RateLimitError
from app.routing.cooldown import CircuitBreaker
from app.routing.dispatch import Dispatcher
from app.routing.options import RouteOptions, route_options
from app.routing.registry import ModelRegistry
from app.routing.state import RoutingState
from app.settings import CooldownPolicy, GroupPolicy, RetryPolicy, RoutingConfig
from tests.unit.routing.fakes import (
    FakeClock,
    FakeProvider,
    dep,
    http_error,
    refused,
    request,
    timeout,
)


def dispatcher(providers: list[FakeProvider], clock: FakeClock | None = None,
               **routing: Any) -> Dispatcher:
    clock = clock or FakeClock()
    config = RoutingConfig(**{"strategy": "round-robin", **routing})
    return Dispatcher(registry=ModelRegistry(providers), routing=config,
                      state=RoutingState(clock=clock),
                      breaker=CircuitBreaker(config.cooldown, clock=clock),
                      rng=random.Random(7), sleep=clock.sleep, clock=clock)


@pytest.mark.parametrize("error", [http_error(500), http_error(502), http_error(503),
                                   http_error(504), http_error(529), http_error(429),
                                   refused(), timeout()],
                         ids=["500", "502", "503", "504", "529", "429", "refused", "timeout"])
def test_transient_failure_moves_to_the_other_deployment_without_waiting(
        error: GatewayError) -> None:
    a = FakeProvider(dep("a"), [error])
    b = FakeProvider(dep("b"))
    clock = FakeClock()
    outcome = dispatcher([a, b], clock).chat(request())
    assert outcome.deployment.id == "b" and outcome.attempts == 2
    assert clock.sleeps == []  # failing over to a fresh deployment needs no backoff


def test_retrying_the_same_deployment_backs_off_exponentially_with_jitter() -> None:
    a = FakeProvider(dep("a"), [http_error(500)] * 3)
    clock = FakeClock()
    d = dispatcher([a], clock, retry=RetryPolicy(retries=3, backoff_initial_s=1.0,
                                                 backoff_max_s=3.0))
    outcome = d.chat(request())
    assert outcome.attempts == 4 and len(a.calls) == 4
    assert len(clock.sleeps) == 3
    for sleep, cap in zip(clock.sleeps, (1.0, 2.0, 3.0), strict=True):
        assert 0 <= sleep <= cap


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    a = FakeProvider(dep("a"), [http_error(429, retry_after="2")])
    clock = FakeClock()
    outcome = dispatcher([a], clock, retry=RetryPolicy(backoff_initial_s=0.01)).chat(request())
    assert outcome.attempts == 2 and clock.sleeps[0] >= 2.0


def test_retry_after_above_the_cap_returns_the_429_at_once() -> None:
    a = FakeProvider(dep("a"), [http_error(429, retry_after="60")])
    clock = FakeClock()
    with pytest.raises(GatewayError) as info:
        dispatcher([a], clock).chat(request())
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "60"
    assert info.value.headers["x-neuroroute-attempts"] == "1" and clock.sleeps == []


def test_a_429_with_retry_after_keeps_other_requests_away_meanwhile() -> None:
    a = FakeProvider(dep("a"), [http_error(429, retry_after="3")])
    b = FakeProvider(dep("b"))
    clock = FakeClock()
    d = dispatcher([a, b], clock)
    d.chat(request())  # a: 429, b serves
    assert [d.chat(request()).deployment.id for _ in range(4)] == ["b"] * 4
    clock.now += 3.1
    assert {d.chat(request()).deployment.id for _ in range(4)} == {"a", "b"}


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_request_errors_are_not_retried(status: int) -> None:
    a = FakeProvider(dep("a"), [http_error(status)])
    b = FakeProvider(dep("b"))
    with pytest.raises(GatewayError) as info:
        dispatcher([a, b]).chat(request())
    assert info.value.status == status and b.calls == []


def test_fallback_group_after_retries_are_exhausted() -> None:
    primary = FakeProvider(dep("p", "main"), [http_error(503)] * 3)
    backup = FakeProvider(dep("f", "backup"))
    d = dispatcher([primary, backup],
                   groups={"main": GroupPolicy(fallbacks=("backup",), retries=2)})
    outcome = d.chat(request("main"))
    assert outcome.deployment.id == "f" and outcome.attempts == 4
    assert outcome.route == "model=main; fallback=backup"
    assert backup.calls[0].model == "main"  # the client's model name is kept


def test_fallbacks_disabled_per_request_return_the_error() -> None:
    primary = FakeProvider(dep("p", "main"), [http_error(503)] * 3)
    backup = FakeProvider(dep("f", "backup"))
    d = dispatcher([primary, backup], groups={"main": GroupPolicy(fallbacks=("backup",))})
    with pytest.raises(GatewayError) as info:
        d.chat(request("main"), RouteOptions(fallbacks=False))
    assert info.value.status == 503 and info.value.headers["x-neuroroute-attempts"] == "3"
    assert backup.calls == []


def test_upstream_context_length_error_goes_to_the_context_fallback() -> None:
    small = FakeProvider(dep("s", "small"), [http_error(400, "context_length_exceeded")])
    error_fb = FakeProvider(dep("e", "other"))
    large = FakeProvider(dep("l", "large"))
    d = dispatcher([small, error_fb, large], groups={"small": GroupPolicy(
        fallbacks=("other",), context_window_fallbacks=("large",))})
    outcome = d.chat(request("small"))
    assert outcome.deployment.id == "l" and outcome.attempts == 2
    assert len(small.calls) == 1 and error_fb.calls == []  # not retried, not the error path


def test_gateway_estimate_above_max_input_tokens_skips_straight_to_larger_context() -> None:
    small = FakeProvider(dep("s", "small", max_input_tokens=100))
    large = FakeProvider(dep("l", "large", max_input_tokens=100_000))
    d = dispatcher([small, large], groups={"small": GroupPolicy(
        context_window_fallbacks=("large",))})
    long_prompt = [{"role": "user", "content": "word " * 2000}]
    outcome = d.chat(request("small", messages=long_prompt))
    assert outcome.deployment.id == "l" and outcome.attempts == 1 and small.calls == []
    assert d.chat(request("small")).deployment.id == "s"  # short prompts stay


def test_streams_failing_before_the_first_event_are_retried() -> None:
    a = FakeProvider(dep("a"), [refused()])
    b = FakeProvider(dep("b"))
    d = dispatcher([a, b])
    outcome = d.chat(request(stream=True))
    assert outcome.stream is not None and outcome.attempts == 2
    assert d.state.stats("b").in_flight == 1  # until the stream is consumed
    assert list(outcome.stream)[-1] == b"data: [DONE]\n\n"
    assert d.state.stats("b").in_flight == 0 and d.state.stats("b").ttft_ewma is not None


def test_a_stream_breaking_after_its_first_event_counts_for_the_breaker() -> None:
    a = FakeProvider(dep("a"), mid_stream_failure=True)
    d = dispatcher([a], cooldown=CooldownPolicy(failures=2))
    for _ in range(2):
        outcome = d.chat(request(stream=True))
        assert outcome.stream is not None
        assert b"error" in list(outcome.stream)[-1]  # relayed as is, no retry
    assert d.breaker.view(["a"])["a"].state == "open"
    assert len(a.calls) == 2


def test_a_client_disconnect_is_not_an_upstream_failure() -> None:
    a = FakeProvider(dep("a"))
    d = dispatcher([a], cooldown=CooldownPolicy(failures=1))
    outcome = d.chat(request(stream=True))
    assert outcome.stream is not None
    next(iter(outcome.stream))
    outcome.stream.close()
    assert d.state.stats("a").in_flight == 0
    assert d.breaker.view(["a"])["a"].state == "closed"


def test_rpm_capacity_skips_the_full_deployment_then_rejects() -> None:
    a = FakeProvider(dep("a", rpm=1))
    b = FakeProvider(dep("b", rpm=1))
    d = dispatcher([a, b])
    assert {d.chat(request()).deployment.id for _ in range(2)} == {"a", "b"}
    with pytest.raises(RateLimitError):
        d.chat(request())


def test_no_attempt_starts_after_the_deadline() -> None:
    clock = FakeClock()

    class Slow(FakeProvider):
        def complete(self, request):  # type: ignore[no-untyped-def]
            clock.now += 10
            return super().complete(request)

    a = Slow(dep("a"), [timeout()] * 5)
    d = dispatcher([a], clock, retry=RetryPolicy(retries=5, deadline_s=15))
    with pytest.raises(GatewayError) as info:
        d.chat(request())
    assert info.value.status == 504 and len(a.calls) == 2


def test_a_swapped_registry_is_used_and_state_survives() -> None:
    old = FakeProvider(dep("a"))
    d = dispatcher([old])
    d.chat(request())
    new_a, new_b = FakeProvider(dep("a")), FakeProvider(dep("b"))
    d.registry = ModelRegistry([new_a, new_b])
    served = {d.chat(request()).deployment.id for _ in range(4)}
    assert served == {"a", "b"} and len(old.calls) == 1
    assert d.state.stats("a").successes == 3


def test_route_options_from_header_and_body() -> None:
    body = {"model": "m", "messages": [], "neuroroute": {"fallbacks": False}, "x": 1}
    stripped, options = route_options(body, None)
    assert options == RouteOptions(fallbacks=False)
    assert stripped == {"model": "m", "messages": [], "x": 1}
    assert route_options({"model": "m"}, "off")[1] == RouteOptions(fallbacks=False)
    assert route_options({"model": "m"}, "on")[1] == RouteOptions(fallbacks=True)
    for bad_body, header in (({"neuroroute": {"fallbacks": "no"}}, None),
                             ({"neuroroute": {"other": 1}}, None), ({}, "maybe")):
        with pytest.raises(InvalidRequestError):
            route_options(bad_body, header)


def test_a_stream_closed_before_its_first_read_is_released() -> None:
    a = FakeProvider(dep("a"))
    d = dispatcher([a])
    outcome = d.chat(request(stream=True))
    assert outcome.stream is not None and d.state.stats("a").in_flight == 1
    outcome.stream.close()  # the client went away before anything was written
    assert d.state.stats("a").in_flight == 0
    outcome.stream.close()  # idempotent
    assert d.state.stats("a").in_flight == 0 and d.state.stats("a").successes == 1
