"""The per-key quota model: what a request asks for, what the store answers, in memory.

A request *asks* to charge its limits (requests and tokens per minute of its key) and to
reserve its estimated cost on its budgets (key, user, team). A store checks every part first
and charges only when all of them pass, atomically, so a refused request consumes nothing:
neither an RPM slot nor tokens nor budget. The same answer also carries the state of the
limits after the charge (the ``x-ratelimit-*`` headers), and, for the Redis store, the breaker
state of the candidate deployments and the response-cache entry (see ``redis_quota``).

Three window strategies, as ``NEUROROUTE_RATELIMIT_STRATEGY`` names them:

- ``fixed-window``: one counter per calendar minute;
- ``sliding-window-counter``: the current minute's counter plus the previous minute's,
  weighted by how much of it still overlaps the last 60 s;
- ``moving-window``: every charge with its time; the sum of the last 60 s.

:class:`MemoryQuotaStore` is the implementation for one worker (and the fallback while Redis
is unreachable); ``redis_quota.RedisQuotaStore`` runs the same algorithm as one Lua script.
Times are integer milliseconds, as in the script.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_MS = 60_000
STRATEGY_CODES = {"fixed-window": "f", "sliding-window-counter": "s", "moving-window": "m"}


@dataclass(frozen=True, slots=True)
class LimitAsk:
    """Charge ``cost`` to the limit ``key`` (requests or tokens per minute of one API key)."""

    name: str  # "requests" | "tokens": the x-ratelimit-*-<name> headers
    key: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class BudgetAsk:
    """Reserve on the spend counter ``key`` while it is below ``max_budget`` (USD)."""

    key: str
    max_budget: float
    ttl_s: int  # how long the period's counter must live; 0: no expiry


@dataclass(frozen=True, slots=True)
class Ask:
    limits: tuple[LimitAsk, ...] = ()
    budgets: tuple[BudgetAsk, ...] = ()
    reserve: float = 0.0  # USD reserved on every budget
    breaker_keys: tuple[str, ...] = ()  # read for the router (Redis store only)
    cache_key: str | None = None  # read for the response cache (Redis store only)

    @property
    def empty(self) -> bool:
        return not (self.limits or self.budgets or self.breaker_keys or self.cache_key)


@dataclass(frozen=True, slots=True)
class LimitState:
    """A limit after this request: what the ``x-ratelimit-*`` headers say."""

    name: str
    limit: int
    remaining: int
    reset_s: float  # seconds until the window frees capacity


ADMITTED, LIMITED, OVER_BUDGET, UNSEEDED = 0, 1, 2, 3


@dataclass(slots=True)
class Answer:
    status: int  # ADMITTED | LIMITED | OVER_BUDGET | UNSEEDED
    index: int = 0  # the refusing limit or budget (0-based), or the first unseeded budget
    limits: tuple[LimitState, ...] = ()
    spends: tuple[float, ...] = ()  # each budget's spend after the reservation (or as refused)
    unseeded: tuple[int, ...] = ()  # budgets whose counter the store does not have yet
    breakers: dict[str, float] = field(default_factory=dict)  # breaker key -> open until (s)
    cache_entry: bytes | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """After the answer: extra tokens the estimate missed, the budgets' real cost, cache
    entries to store. Applied with one command (Redis; several requests' together) and never
    refused."""

    extra: tuple[tuple[str, int], ...] = ()  # (limit key, tokens) charged now
    budgets: tuple[tuple[str, float], ...] = ()  # (spend key, real cost - reservation)
    cache_sets: tuple[tuple[str, bytes, int], ...] = ()  # (key, value, ttl s), Redis only

    @property
    def empty(self) -> bool:
        return not (self.extra or self.budgets or self.cache_sets)

    @staticmethod
    def merge(parts: list[Settlement]) -> Settlement:
        """One settlement doing what all of ``parts`` do (amounts per key summed)."""
        extra: dict[str, int] = {}
        budgets: dict[str, float] = {}
        for part in parts:
            for key, tokens in part.extra:
                extra[key] = extra.get(key, 0) + tokens
            for key, delta in part.budgets:
                budgets[key] = budgets.get(key, 0.0) + delta
        return Settlement(tuple(extra.items()), tuple(budgets.items()),
                          tuple(entry for part in parts for entry in part.cache_sets))


def window_id(now_ms: int) -> int:
    return now_ms // WINDOW_MS


class _Moving:
    """One moving-window limit: the charges of the last minute and their sum."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int]] = deque()
        self.total = 0

    def trim(self, now_ms: int) -> None:
        horizon = now_ms - WINDOW_MS
        while self.entries and self.entries[0][0] <= horizon:
            self.total -= self.entries.popleft()[1]


class MemoryQuotaStore:
    """The limits of this process (exact for one worker). Budgets without Redis are the
    budget service's own view of the recorded spend (``app.usage.budgets``), not kept here."""

    def __init__(self, strategy: str = "fixed-window") -> None:
        self.strategy = STRATEGY_CODES[strategy]
        self._counters: dict[tuple[str, int], int] = {}  # (key, window) -> count
        self._moving: dict[str, _Moving] = {}

    # -- limits ------------------------------------------------------------------------

    def _used(self, key: str, now_ms: int) -> tuple[int, float]:
        """(charged in the current window, seconds until it frees capacity)."""
        if self.strategy == "m":
            moving = self._moving.get(key)
            if moving is None:
                return 0, WINDOW_MS / 1000
            moving.trim(now_ms)
            oldest = moving.entries[0][0] if moving.entries else now_ms
            return moving.total, (oldest + WINDOW_MS - now_ms) / 1000
        wid = window_id(now_ms)
        current = self._counters.get((key, wid), 0)
        reset = ((wid + 1) * WINDOW_MS - now_ms) / 1000
        if self.strategy == "f":
            return current, reset
        previous = self._counters.get((key, wid - 1), 0)
        elapsed = now_ms - wid * WINDOW_MS
        return math.floor(previous * (WINDOW_MS - elapsed) / WINDOW_MS) + current, reset

    def charge(self, key: str, cost: int, now_ms: int) -> None:
        """Add ``cost`` to the limit ``key`` at ``now_ms`` (no check)."""
        if self.strategy == "m":
            moving = self._moving.setdefault(key, _Moving())
            moving.trim(now_ms)
            moving.entries.append((now_ms, cost))
            moving.total += cost
            return
        wid = window_id(now_ms)
        self._counters[(key, wid)] = self._counters.get((key, wid), 0) + cost
        if len(self._counters) > 4 * (len(self._moving) + 1024):
            self._expire(wid)

    def _expire(self, wid: int) -> None:
        for old in [k for k in self._counters if k[1] < wid - 1]:
            del self._counters[old]

    # -- the whole ask -------------------------------------------------------------------

    def admit(self, limits: tuple[LimitAsk, ...], now_ms: int) -> Answer:
        """Check every limit; charge all of them only if all pass. (Runs without a yield, so
        it is atomic among the greenlets of the worker.)"""
        used = [self._used(limit.key, now_ms) for limit in limits]
        states = tuple(LimitState(limit.name, limit.limit, max(0, limit.limit - count), reset)
                       for limit, (count, reset) in zip(limits, used, strict=True))
        for index, (limit, (count, _)) in enumerate(zip(limits, used, strict=True)):
            if count + limit.cost > limit.limit:
                return Answer(LIMITED, index, states)
        for limit in limits:
            self.charge(limit.key, limit.cost, now_ms)
        return Answer(ADMITTED, 0, tuple(
            LimitState(s.name, s.limit, max(0, s.remaining - limit.cost), s.reset_s)
            for s, limit in zip(states, limits, strict=True)))

    def settle(self, extra: tuple[tuple[str, int], ...], now_ms: int) -> None:
        """Charge tokens the estimate missed (never refused)."""
        for key, tokens in extra:
            self.charge(key, tokens, now_ms)
