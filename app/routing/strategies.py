"""Balancing strategies: which deployment of a group serves the next attempt.

Every strategy picks from the candidates the dispatcher has already filtered (healthy, under
capacity, large enough), so a strategy only has to rank. Ties are broken by the configured
weights, which keeps the weights meaningful for every strategy.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.pricing import Price, ranking_cost
from app.providers.base import Provider
from app.routing.state import RoutingState

DEFAULT_STRATEGY = "weighted"


@dataclass(frozen=True, slots=True)
class PickContext:
    """What a strategy may know about the request."""

    group: str
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0  # expected completion size, for price comparisons
    price: Callable[[str], Price | None] = lambda deployment_id: None  # the registry's prices


class Strategy(Protocol):
    def pick(self, candidates: Sequence[Provider], ctx: PickContext) -> Provider:
        """One of ``candidates`` (never empty)."""


class WeightedRandom:
    """Random, proportional to each deployment's ``weight`` (the default)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, candidates: Sequence[Provider], ctx: PickContext) -> Provider:
        if len(candidates) == 1:
            return candidates[0]
        weights = [p.deployment.weight for p in candidates]
        return self.rng.choices(candidates, weights=weights, k=1)[0]


class _Ranked(ABC):
    """Pick the lowest ``key``; ties go to WeightedRandom."""

    def __init__(self, rng: random.Random) -> None:
        self.tie_break = WeightedRandom(rng)

    @abstractmethod
    def key(self, provider: Provider, ctx: PickContext) -> float:
        """The ranking value of ``provider`` for this request: lower is better."""

    def pick(self, candidates: Sequence[Provider], ctx: PickContext) -> Provider:
        keys = [self.key(p, ctx) for p in candidates]
        best = min(keys)
        return self.tie_break.pick([p for p, k in zip(candidates, keys, strict=True)
                                    if k == best], ctx)


class RoundRobin:
    """Each deployment in turn, per group."""

    def __init__(self, state: RoutingState) -> None:
        self.state = state

    def pick(self, candidates: Sequence[Provider], ctx: PickContext) -> Provider:
        return candidates[self.state.next_turn(ctx.group) % len(candidates)]


class LeastInFlight(_Ranked):
    """The deployment with the fewest requests in flight from this process."""

    def __init__(self, state: RoutingState, rng: random.Random) -> None:
        super().__init__(rng)
        self.state = state

    def key(self, provider: Provider, ctx: PickContext) -> float:
        return float(self.state.stats(provider.deployment.id).in_flight)


class LowestLatency(_Ranked):
    """The lowest moving average of time to first token (streams) or latency (non-stream).

    A deployment with no sample yet ranks first, so each one is measured before it is judged.
    """

    def __init__(self, state: RoutingState, rng: random.Random) -> None:
        super().__init__(rng)
        self.state = state

    def key(self, provider: Provider, ctx: PickContext) -> float:
        stats = self.state.stats(provider.deployment.id)
        first, second = ((stats.ttft_ewma, stats.latency_ewma) if ctx.stream
                         else (stats.latency_ewma, stats.ttft_ewma))
        value = first if first is not None else second
        return 0.0 if value is None else value


class Cheapest(_Ranked):
    """The lowest estimated price for this request's size (the registry's price of each
    deployment: its ``*_cost_per_mtok``, else the default for its model; unknown last)."""

    def key(self, provider: Provider, ctx: PickContext) -> float:
        return ranking_cost(ctx.price(provider.deployment.id), ctx.input_tokens,
                            ctx.output_tokens)


StrategyFactory = Callable[[RoutingState, random.Random], Strategy]

STRATEGIES: dict[str, StrategyFactory] = {
    "weighted": lambda state, rng: WeightedRandom(rng),
    "round-robin": lambda state, rng: RoundRobin(state),
    "least-in-flight": LeastInFlight,
    "lowest-latency": LowestLatency,
    "cheapest": lambda state, rng: Cheapest(rng),
}


def build_strategies(state: RoutingState, rng: random.Random) -> dict[str, Strategy]:
    """One instance of every strategy, sharing the process's state and RNG."""
    return {name: factory(state, rng) for name, factory in STRATEGIES.items()}
