"""Per-process runtime state of every deployment, keyed by deployment id.

It lives outside :class:`~app.routing.registry.ModelRegistry` on purpose: the registry is
rebuilt and swapped when deployments change, and a deployment that survives the swap keeps
its in-flight count, latency averages and request windows. Under gevent every greenlet of a
worker runs on one OS thread and only switches at I/O, so plain dict/deque updates are safe.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.settings import Deployment

WINDOW_S = 60.0  # rpm/tpm are per minute


@dataclass(slots=True)
class DeploymentStats:
    """What this process has observed about one deployment."""

    in_flight: int = 0
    latency_ewma: float | None = None  # seconds for a whole non-stream answer
    ttft_ewma: float | None = None  # seconds until a stream's first event
    successes: int = 0
    failures: int = 0
    limited_until: float = 0.0  # the upstream said 429 + Retry-After: leave it alone until then
    request_times: deque[float] = field(default_factory=deque)
    token_events: deque[tuple[float, int]] = field(default_factory=deque)
    tokens_in_window: int = 0


class RoutingState:
    """Counters and moving averages the strategies and capacity checks read."""

    def __init__(self, *, alpha: float = 0.3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.alpha = alpha
        self.clock = clock
        self._stats: dict[str, DeploymentStats] = {}
        self._round_robin: dict[str, int] = {}

    def stats(self, deployment_id: str) -> DeploymentStats:
        """The stats of a deployment, created on first use."""
        stats = self._stats.get(deployment_id)
        if stats is None:
            stats = self._stats[deployment_id] = DeploymentStats()
        return stats

    def begin(self, deployment_id: str, tokens: int) -> None:
        """An attempt starts: count it in flight and in the rpm/tpm windows."""
        stats = self.stats(deployment_id)
        now = self.clock()
        stats.in_flight += 1
        stats.request_times.append(now)
        self.add_tokens(deployment_id, tokens, now=now)

    def add_tokens(self, deployment_id: str, tokens: int, *, now: float | None = None) -> None:
        """Charge tokens to the tpm window (prompt estimate first, completion when known)."""
        if tokens <= 0:
            return
        stats = self.stats(deployment_id)
        stats.token_events.append((self.clock() if now is None else now, tokens))
        stats.tokens_in_window += tokens

    def end(self, deployment_id: str, *, ok: bool, latency: float | None = None,
            ttft: float | None = None) -> None:
        """An attempt finished (or its stream ended); fold its timing into the averages."""
        stats = self.stats(deployment_id)
        stats.in_flight = max(0, stats.in_flight - 1)
        if ok:
            stats.successes += 1
        else:
            stats.failures += 1
        self.record_timing(deployment_id, latency=latency, ttft=ttft)

    def record_timing(self, deployment_id: str, *, latency: float | None = None,
                      ttft: float | None = None) -> None:
        """Fold a latency and/or time-to-first-token sample into the moving averages."""
        stats = self.stats(deployment_id)
        if latency is not None:
            stats.latency_ewma = self._ewma(stats.latency_ewma, latency)
        if ttft is not None:
            stats.ttft_ewma = self._ewma(stats.ttft_ewma, ttft)

    def _ewma(self, previous: float | None, sample: float) -> float:
        if previous is None:
            return sample
        return self.alpha * sample + (1 - self.alpha) * previous

    def rate_limited(self, deployment_id: str, seconds: float) -> None:
        """Skip the deployment for ``seconds`` (its upstream answered 429 with Retry-After)."""
        stats = self.stats(deployment_id)
        stats.limited_until = max(stats.limited_until, self.clock() + seconds)

    def _trim(self, stats: DeploymentStats, now: float) -> None:
        horizon = now - WINDOW_S
        while stats.request_times and stats.request_times[0] <= horizon:
            stats.request_times.popleft()
        while stats.token_events and stats.token_events[0][0] <= horizon:
            stats.tokens_in_window -= stats.token_events.popleft()[1]

    def usage(self, deployment_id: str) -> tuple[int, int]:
        """(requests, tokens) sent to the deployment in the last minute by this process."""
        stats = self.stats(deployment_id)
        self._trim(stats, self.clock())
        return len(stats.request_times), stats.tokens_in_window

    def at_capacity(self, deployment: Deployment, tokens: int) -> bool:
        """True when one more request of ``tokens`` would exceed rpm/tpm, or 429 is pending."""
        if self.stats(deployment.id).limited_until > self.clock():
            return True
        return self.over_limits(deployment, tokens)

    def over_limits(self, deployment: Deployment, tokens: int) -> bool:
        """True when one more request of ``tokens`` would exceed the deployment's rpm/tpm."""
        if deployment.rpm is None and deployment.tpm is None:
            return False
        stats = self.stats(deployment.id)
        self._trim(stats, self.clock())
        if deployment.rpm is not None and len(stats.request_times) >= deployment.rpm:
            return True
        return deployment.tpm is not None and stats.tokens_in_window > 0 \
            and stats.tokens_in_window + tokens > deployment.tpm

    def next_turn(self, group: str) -> int:
        """A counter per group for round-robin."""
        turn = self._round_robin.get(group, 0)
        self._round_robin[group] = turn + 1
        return turn

    def snapshot(self, deployment: Deployment) -> dict[str, Any]:
        """Public view for /admin/routing."""
        stats = self.stats(deployment.id)
        requests, tokens = self.usage(deployment.id)
        return {
            "in_flight": stats.in_flight,
            "latency_ewma_ms": _ms(stats.latency_ewma),
            "ttft_ewma_ms": _ms(stats.ttft_ewma),
            "successes": stats.successes,
            "failures": stats.failures,
            "requests_last_minute": requests,
            "tokens_last_minute": tokens,
            "rate_limited_for_s": round(max(0.0, stats.limited_until - self.clock()), 3),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
