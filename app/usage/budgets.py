"""Budgets per key, user and team: which apply, their counters, and the view without Redis.

Spend is counted per budget period (daily / weekly / monthly, UTC calendar; ``total`` or no
period = all time). A request is admitted while the spend is below the budget, and a
reservation (an upper estimate of its cost) is added at once, so concurrent requests see each
other: the overshoot is at most about one request's cost per scope. After the response the
reservation is corrected to the real cost.

- With Redis the check-and-reserve is part of the admission script (``app.admission``), on a
  shared counter per scope and period whose key :meth:`Scope.counter` gives; a counter Redis
  does not have yet (first use, Redis restarted) is seeded from the spend recorded in the
  database.
- Without Redis (or while it is unreachable) :meth:`BudgetService.admit_local` uses the
  database's recorded spend, refreshed every ``NEUROROUTE_BUDGET_REFRESH_INTERVAL`` seconds,
  plus this worker's own reservations and settled costs. Other workers' spend is then seen
  late, by up to that interval plus the usage writer's flush interval: the overshoot bound is
  what all workers admit in that time.

A user's or team's budget is read from the database and cached until the keys' sync counter
moves (every admin change to keys, users or teams bumps it; see ``app.sync``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.auth.service import Principal
from app.errors import InsufficientQuotaError

log = logging.getLogger(__name__)


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
        """The name of this scope's spend counter for the period containing ``now``."""
        start = period_start(self.period, now)
        stamp = start.strftime("%Y%m%d") if start else "total"
        return f"{namespace}:spend:{self.kind}:{self.entity_id}:{self.period or 'total'}:{stamp}"


@dataclass(slots=True)
class LocalReservation:
    """What a request reserved on this worker's view (no Redis); settled once."""

    scopes: list[Scope]
    amount: float
    at: datetime
    settled: bool = False


@dataclass(slots=True)
class _LocalView:
    db_spend: float  # recorded in the database at the last load
    loaded_at: float
    reserved: float = 0.0  # reservations of this worker's requests still running
    settled: float = 0.0  # costs this worker settled since the load (maybe not written yet)

    @property
    def spend(self) -> float:
        return self.db_spend + self.reserved + self.settled


@dataclass
class BudgetService:
    """Budget scopes and the local admission path. ``spend_since(kind, id, since)`` reads
    recorded spend; ``entity_budget(kind, id)`` reads a user's or team's budget."""

    spend_since: Callable[[str, str, datetime | None], float]
    entity_budget: Callable[[str, str], tuple[float | None, str | None]]
    refresh_interval: float = 2.0
    soft_ratio: float = 0.8
    clock: Callable[[], float] = time.monotonic
    _views: dict[tuple[str, str, str], _LocalView] = field(default_factory=dict)
    _entities: dict[tuple[str, str], tuple[float | None, str | None]] = field(
        default_factory=dict)
    _warned: set[tuple[str, str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- which budgets apply ---------------------------------------------------------------

    def forget_entities(self) -> None:
        """Drop the cached user/team budgets (an admin changed keys, users or teams)."""
        self._entities.clear()

    def _entity(self, kind: str, entity_id: str) -> tuple[float | None, str | None]:
        cached = self._entities.get((kind, entity_id))
        if cached is not None:
            return cached
        try:
            value = self.entity_budget(kind, entity_id)
        except Exception:  # noqa: BLE001 - database down: no budget known for it (fail open)
            log.warning("budget of %s %s unavailable (database down)", kind, entity_id)
            return None, None
        self._entities[(kind, entity_id)] = value
        return value

    def scopes(self, principal: Principal) -> list[Scope]:
        """The budgets of the caller: its key's, its user's and its team's."""
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

    def recorded(self, scope: Scope, now: datetime) -> float:
        """The spend recorded in the database for the scope's current period."""
        return self.spend_since(scope.kind, scope.entity_id, period_start(scope.period, now))

    # -- outcomes --------------------------------------------------------------------------

    def refusal(self, scope: Scope, spend: float) -> InsufficientQuotaError:
        period = {"daily": " for today", "weekly": " for this week",
                  "monthly": " for this month"}.get(scope.period or "", "")
        return InsufficientQuotaError(
            f"The {scope.kind}'s budget{period} is spent: ${spend:.4f} of "
            f"${scope.max_budget:.4f}.")

    def soft_warning(self, scope: Scope, spend: float, now: datetime) -> None:
        """Log once per period when the spend reaches the soft ratio of the budget."""
        if spend < scope.max_budget * self.soft_ratio:
            return
        marker = (scope.kind, scope.entity_id, scope.counter("", now))
        if marker not in self._warned:
            self._warned.add(marker)
            log.warning("soft budget reached", extra={
                "budget_kind": scope.kind, "budget_entity": scope.entity_id,
                "spend_usd": round(spend, 6), "max_budget_usd": scope.max_budget})

    # -- without Redis ---------------------------------------------------------------------

    def _view(self, scope: Scope, now: datetime) -> _LocalView:
        key = (scope.kind, scope.entity_id, scope.counter("", now))
        view = self._views.get(key)
        if view is None or self.clock() - view.loaded_at >= self.refresh_interval:
            try:
                spend = self.recorded(scope, now)
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

    def admit_local(self, scopes: list[Scope], amount: float,
                    now: datetime) -> LocalReservation:
        """Reserve ``amount`` USD on every scope; raises InsufficientQuotaError (429) when one
        of them is spent (nothing is reserved then)."""
        with self._lock:
            views = [(scope, self._view(scope, now)) for scope in scopes]
            for scope, view in views:
                if view.spend >= scope.max_budget:
                    raise self.refusal(scope, view.spend)
            for scope, view in views:
                view.reserved += amount
                self.soft_warning(scope, view.spend, now)
        return LocalReservation(scopes, amount, now)

    def settle_local(self, reservation: LocalReservation, cost: float) -> None:
        """Replace the reservation by the request's real cost (once; 0 releases it)."""
        if reservation.settled:
            return
        reservation.settled = True
        with self._lock:
            for scope in reservation.scopes:
                view = self._views.get((scope.kind, scope.entity_id,
                                        scope.counter("", reservation.at)))
                if view is not None:
                    # The estimate is replaced by the real cost, counted here until the usage
                    # record is in the database and the next refresh reads it.
                    view.reserved = max(0.0, view.reserved - reservation.amount)
                    view.settled += cost
