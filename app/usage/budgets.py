"""Budgets per key, user and team: refuse a request once its spend reached ``max_budget``.

Spend is counted per budget period (daily / weekly / monthly, UTC calendar; ``total`` or no
period = all time). A request is admitted while the spend is below the budget, and its
estimated cost is *reserved* at once, so concurrent requests see each other: the overshoot
is at most about one request's cost per scope. After the response the reservation is
corrected to the real cost.

- With Redis (``NEUROROUTE_REDIS_URL``) the check-and-reserve is one Lua script on a shared
  counter, atomic across workers and instances. A counter Redis does not have yet (first
  use, Redis restarted) is seeded from the spend recorded in the database.
- Without Redis (or while it is unreachable) each worker uses the database's recorded spend,
  refreshed every ``NEUROROUTE_BUDGET_REFRESH_INTERVAL`` seconds, plus its own reservations
  and settled costs. Other workers' spend is then seen late, by up to that interval plus the
  usage writer's flush interval: the overshoot bound is what all workers admit in that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from app.auth.service import Principal
from app.errors import InsufficientQuotaError

log = logging.getLogger(__name__)

# KEYS[1] counter; ARGV: budget, reservation, ttl. Returns {admitted, spend, existed}.
_ADMIT = """
local current = redis.call('GET', KEYS[1])
if not current then return {0, '0', 0} end
if tonumber(current) >= tonumber(ARGV[1]) then return {0, current, 1} end
local spend = redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {1, spend, 1}
"""


def period_start(period: str | None, now: datetime) -> datetime | None:
    """The start (UTC) of the budget period containing ``now``; None for all time."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    return None


def period_ttl(period: str | None) -> int:
    """How long a period's Redis counter must live (with a margin); 0: no expiry."""
    return {"daily": 2, "weekly": 8, "monthly": 32}.get(period or "", 0) * 86_400


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str  # key | user | team
    entity_id: str
    max_budget: float
    period: str | None

    def counter(self, namespace: str, now: datetime) -> str:
        start = period_start(self.period, now)
        stamp = start.strftime("%Y%m%d") if start else "total"
        return f"{namespace}:spend:{self.kind}:{self.entity_id}:{self.period or 'total'}:{stamp}"


@dataclass(slots=True)
class Reservation:
    """What a request reserved; settled once with its real cost."""

    scopes: list[Scope]
    amount: float
    at: datetime
    backend: str  # redis | local
    settled: bool = False


@dataclass(slots=True)
class _LocalView:
    db_spend: float  # recorded in the database at the last load
    loaded_at: float
    reserved: float = 0.0  # estimates of this worker's requests still running
    settled: float = 0.0  # costs this worker settled since the load (maybe not written yet)

    @property
    def spend(self) -> float:
        return self.db_spend + self.reserved + self.settled


@dataclass
class BudgetService:
    """Admission against budgets. ``spend_since(kind, id, since)`` reads recorded spend;
    ``entity_budget(kind, id)`` reads a user's or team's budget."""

    spend_since: Callable[[str, str, datetime | None], float]
    entity_budget: Callable[[str, str], tuple[float | None, str | None]]
    redis_url: str | None = None
    namespace: str = "neuroroute"
    refresh_interval: float = 2.0
    soft_ratio: float = 0.8
    clock: Callable[[], float] = time.monotonic
    _redis: Any = None
    _admit_script: Any = None
    _views: dict[tuple[str, str, str], _LocalView] = field(default_factory=dict)
    _entities: dict[tuple[str, str], tuple[float, tuple[float | None, str | None]]] = field(
        default_factory=dict)
    _warned: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.redis_url:
            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=0.25,
                                               socket_connect_timeout=0.25)
            self._admit_script = self._redis.register_script(_ADMIT)

    # -- which budgets apply ---------------------------------------------------------------

    def _entity(self, kind: str, entity_id: str) -> tuple[float | None, str | None]:
        cached = self._entities.get((kind, entity_id))
        now = self.clock()
        if cached is not None and now - cached[0] < self.refresh_interval * 5:
            return cached[1]
        try:
            value = self.entity_budget(kind, entity_id)
        except Exception:  # noqa: BLE001 - database down: keep what we knew (or none)
            return cached[1] if cached else (None, None)
        self._entities[(kind, entity_id)] = (now, value)
        return value

    def scopes(self, principal: Principal) -> list[Scope]:
        out = []
        if principal.max_budget is not None:
            out.append(Scope("key", principal.key_id, principal.max_budget,
                             principal.budget_period))
        for kind, entity_id in (("user", principal.user_id), ("team", principal.team_id)):
            if entity_id:
                max_budget, period = self._entity(kind, entity_id)
                if max_budget is not None:
                    out.append(Scope(kind, entity_id, max_budget, period))
        return out

    # -- admission -------------------------------------------------------------------------

    def admit(self, principal: Principal, estimate: float) -> Reservation | None:
        """Reserve ``estimate`` USD on every budget of the caller; raises
        InsufficientQuotaError (429) when one of them is spent."""
        scopes = self.scopes(principal)
        if not scopes:
            return None
        now = datetime.now(UTC)
        if self._redis is not None:
            try:
                return self._admit_redis(scopes, estimate, now)
            except redis.RedisError as exc:
                log.warning("budget counters unavailable in Redis, using the database view: "
                            "%s", type(exc).__name__)
        return self._admit_local(scopes, estimate, now)

    def _refuse(self, scope: Scope, spend: float) -> InsufficientQuotaError:
        period = {"daily": " for today", "weekly": " for this week",
                  "monthly": " for this month"}.get(scope.period or "", "")
        return InsufficientQuotaError(
            f"The {scope.kind}'s budget{period} is spent: ${spend:.4f} of "
            f"${scope.max_budget:.4f}.")

    def _soft_warning(self, scope: Scope, spend: float, now: datetime) -> None:
        if spend < scope.max_budget * self.soft_ratio:
            return
        marker = (scope.kind, scope.entity_id, scope.counter("", now))
        if marker not in self._warned:
            self._warned.add(marker)
            log.warning("soft budget reached", extra={
                "budget_kind": scope.kind, "budget_entity": scope.entity_id,
                "spend_usd": round(spend, 6), "max_budget_usd": scope.max_budget})

    def _admit_redis(self, scopes: list[Scope], estimate: float,
                     now: datetime) -> Reservation:
        reserved: list[Scope] = []
        try:
            for scope in scopes:
                key = scope.counter(self.namespace, now)
                for _ in range(2):
                    admitted, spend, existed = self._admit_script(
                        keys=[key], args=[scope.max_budget, estimate, period_ttl(scope.period)])
                    if existed:
                        break
                    # Not in Redis yet: start from what the database has recorded.
                    recorded = self.spend_since(scope.kind, scope.entity_id,
                                                period_start(scope.period, now))
                    self._redis.set(key, recorded, nx=True,
                                    ex=period_ttl(scope.period) or None)
                if not admitted:
                    raise self._refuse(scope, float(spend))
                reserved.append(scope)
                self._soft_warning(scope, float(spend), now)
        except BaseException:
            self._release(reserved, estimate, now)
            raise
        return Reservation(reserved, estimate, now, "redis")

    def _release(self, scopes: list[Scope], amount: float, at: datetime) -> None:
        for scope in scopes:
            try:
                self._redis.incrbyfloat(scope.counter(self.namespace, at), -amount)
            except redis.RedisError:
                log.warning("could not release a budget reservation")

    def _view(self, scope: Scope, now: datetime) -> _LocalView:
        key = (scope.kind, scope.entity_id, scope.counter("", now))
        view = self._views.get(key)
        if view is None or self.clock() - view.loaded_at >= self.refresh_interval:
            try:
                spend = self.spend_since(scope.kind, scope.entity_id,
                                         period_start(scope.period, now))
            except Exception:  # noqa: BLE001 - database down: keep counting locally
                if view is not None:
                    return view
                spend = 0.0
            # Requests still running are not in the database yet: keep their reservations.
            # Settled costs are (within one writer flush) in the reloaded sum.
            view = _LocalView(spend, self.clock(),
                              reserved=view.reserved if view is not None else 0.0)
            self._views[key] = view
        return view

    def _admit_local(self, scopes: list[Scope], estimate: float,
                     now: datetime) -> Reservation:
        with self._lock:
            views = [(scope, self._view(scope, now)) for scope in scopes]
            for scope, view in views:
                if view.spend >= scope.max_budget:
                    raise self._refuse(scope, view.spend)
            for scope, view in views:
                view.reserved += estimate
                self._soft_warning(scope, view.spend, now)
        return Reservation(scopes, estimate, now, "local")

    def settle(self, reservation: Reservation | None, cost: float) -> None:
        """Replace the reservation by the request's real cost (once)."""
        if reservation is None or reservation.settled:
            return
        reservation.settled = True
        if reservation.backend == "redis":
            # Counter += cost - estimate: the reservation becomes the real cost.
            self._release(reservation.scopes, reservation.amount - cost, reservation.at)
            return
        with self._lock:
            for scope in reservation.scopes:
                view = self._views.get((scope.kind, scope.entity_id,
                                        scope.counter("", reservation.at)))
                if view is not None:
                    # The estimate is replaced by the real cost, counted here until the usage
                    # record is in the database and the next refresh reads it.
                    view.reserved = max(0.0, view.reserved - reservation.amount)
                    view.settled += cost
