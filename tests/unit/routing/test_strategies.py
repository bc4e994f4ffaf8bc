"""Balancing strategies: distributions with a seeded RNG, and the ranking ones."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.routing.state import RoutingState
from app.routing.strategies import (
    Cheapest,
    LeastInFlight,
    LowestLatency,
    PickContext,
    RoundRobin,
    WeightedRandom,
)
from tests.unit.routing.fakes import FakeProvider, dep

CTX = PickContext(group="g")


def providers(*weights: float) -> list[FakeProvider]:
    return [FakeProvider(dep(f"d{i}", weight=w)) for i, w in enumerate(weights)]


def test_weighted_random_honours_weights_over_10000_picks() -> None:
    pool = providers(1, 2, 7)
    strategy = WeightedRandom(random.Random(1234))
    counts = Counter(strategy.pick(pool, CTX).deployment.id for _ in range(10_000))
    for provider, share in zip(pool, (0.1, 0.2, 0.7), strict=True):
        assert counts[provider.deployment.id] / 10_000 == pytest.approx(share, abs=0.015)


def test_round_robin_cycles_per_group() -> None:
    pool = providers(1, 1, 1)
    strategy = RoundRobin(RoutingState())
    picks = [strategy.pick(pool, CTX).deployment.id for _ in range(6)]
    assert picks == ["d0", "d1", "d2", "d0", "d1", "d2"]
    other = PickContext(group="other")
    assert strategy.pick(pool, other).deployment.id == "d0"  # its own counter


def test_least_in_flight_prefers_the_idle_deployment() -> None:
    state = RoutingState()
    pool = providers(1, 1, 1)
    state.begin("d0", 0)
    state.begin("d1", 0)
    state.begin("d1", 0)
    strategy = LeastInFlight(state, random.Random(1))
    assert {strategy.pick(pool, CTX).deployment.id for _ in range(50)} == {"d2"}
    state.begin("d2", 0)
    state.begin("d2", 0)
    state.end("d1", ok=True)
    state.end("d1", ok=True)  # d1 is idle again
    assert {strategy.pick(pool, CTX).deployment.id for _ in range(50)} == {"d1"}


def test_lowest_latency_prefers_the_faster_and_measures_unknown_ones_first() -> None:
    state = RoutingState(alpha=0.5)
    pool = providers(1, 1)
    strategy = LowestLatency(state, random.Random(1))
    state.record_timing("d0", latency=0.8)
    assert strategy.pick(pool, CTX).deployment.id == "d1"  # never measured: try it
    state.record_timing("d1", latency=0.2, ttft=0.9)
    state.record_timing("d0", ttft=0.1)
    assert strategy.pick(pool, CTX).deployment.id == "d1"  # non-stream: latency average
    stream_ctx = PickContext(group="g", stream=True)
    assert strategy.pick(pool, stream_ctx).deployment.id == "d0"  # stream: time to first token
    for _ in range(5):  # d1 slows down; the moving average follows
        state.record_timing("d1", latency=2.0)
    assert strategy.pick(pool, CTX).deployment.id == "d0"


def test_cheapest_uses_prices_for_the_request_size() -> None:
    cheap_in = FakeProvider(dep("cheap-in", input_cost_per_mtok=0.1, output_cost_per_mtok=10))
    cheap_out = FakeProvider(dep("cheap-out", input_cost_per_mtok=5, output_cost_per_mtok=1))
    strategy = Cheapest(random.Random(1))
    long_prompt = PickContext(group="g", input_tokens=100_000, output_tokens=100)
    long_answer = PickContext(group="g", input_tokens=100, output_tokens=10_000)
    assert strategy.pick([cheap_in, cheap_out], long_prompt).deployment.id == "cheap-in"
    assert strategy.pick([cheap_in, cheap_out], long_answer).deployment.id == "cheap-out"


def test_rpm_and_tpm_windows_slide() -> None:
    now = [0.0]
    state = RoutingState(clock=lambda: now[0])
    limited = dep("d", rpm=2, tpm=1000)
    state.begin("d", 100)
    assert not state.at_capacity(limited, 100)
    assert state.at_capacity(limited, 950)  # tpm: 100 + 950 > 1000
    state.begin("d", 100)
    assert state.at_capacity(limited, 1)  # rpm: 2 requests this minute
    now[0] = 61.0
    assert not state.at_capacity(limited, 900)
    assert state.usage("d") == (0, 0)
