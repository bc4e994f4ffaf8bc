"""Admission: the caller's RPM/TPM and budgets, checked and charged in one step.

With Redis, one script call (``redis_quota.ADMIT``) checks and charges the key's limits and
reserves on its budgets, and returns, in the same round trip, the breaker state of the
deployments the router may use and the response-cache entry: the only Redis round trip
before the upstream call. :meth:`Admission.settle` sends the corrections after the answer in
at most one more.

Redis is never a dependency. On a Redis error the worker counts the same limits in memory
(:class:`~app.admission.quota.MemoryQuotaStore`), starting from the last counts it saw in
Redis, so one worker never admits more than the limit in a window because of the switch;
with W workers each counting alone the bound is W times the limit per window until Redis is
back. Budgets then use the budget service's database view. Redis is tried again
:data:`REDIS_RETRY_S` after the error, so shared counting resumes at most that long (plus
one timeout) after Redis answers again; what was admitted in memory meanwhile is added to
the shared counters first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from app.admission.quota import (
    ADMITTED,
    LIMITED,
    OVER_BUDGET,
    UNSEEDED,
    Answer,
    Ask,
    BudgetAsk,
    LimitAsk,
    LimitState,
    MemoryQuotaStore,
    Settlement,
)
from app.admission.redis_quota import RedisQuotaStore
from app.admission.settler import Settler
from app.auth.service import Principal
from app.errors import InsufficientQuotaError, RateLimitError
from app.usage.budgets import BudgetService, LocalReservation, Scope, period_ttl

log = logging.getLogger(__name__)

REDIS_RETRY_S = 1.0  # after a Redis error, limits are counted in memory this long


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Limits for keys that set none of their own (None: no limit), and the Redis prefix."""

    default_rpm: int | None = None
    default_tpm: int | None = None
    namespace: str = "neuroroute"


class QuotaExceeded(RateLimitError):
    """429 from a per-key limit; ``limits`` feed the ``x-ratelimit-*`` headers."""

    def __init__(self, message: str, *, limits: tuple[LimitState, ...], retry_after: int):
        super().__init__(message, code="rate_limit_exceeded",
                         headers={"Retry-After": str(retry_after)})
        self.limits = limits


class BudgetExceeded(InsufficientQuotaError):
    """429 ``insufficient_quota`` from a budget; ``limits``: the key's limits, uncharged."""

    def __init__(self, message: str, *, limits: tuple[LimitState, ...] = ()) -> None:
        super().__init__(message)
        self.limits = limits


@dataclass(slots=True)
class Admitted:
    """What admission charged (to settle later) and what it read for the router and cache."""

    limits: tuple[LimitState, ...] = ()
    tpm_key: str | None = None  # where extra tokens go after the answer
    charged_tokens: int = 0
    budget_keys: tuple[str, ...] = ()  # Redis budget counters holding ``reserve``
    reserve: float = 0.0
    local_budget: LocalReservation | None = None
    backend: str = "memory"  # redis | memory
    breakers: dict[str, float] | None = None  # breaker key -> open until; None: not read
    cache_entry: bytes | None = None
    cache_read: bool = False  # the cache key was read in the admission round trip


class Admission:
    def __init__(self, *, config: QuotaConfig, budgets: BudgetService,
                 memory: MemoryQuotaStore, redis_store: RedisQuotaStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.budgets = budgets
        self.memory = memory
        self.redis = redis_store
        self.clock = clock
        self._redis_down_until = 0.0
        # The last count seen in Redis per limit key (ms, count): a switch to memory starts
        # from there instead of from zero.
        self._seen: dict[str, tuple[int, int]] = {}
        self._outage: dict[str, int] = {}  # charged in memory during an outage, per key
        self._degraded = False  # counting in memory because Redis failed
        self.settler = Settler(apply=self._apply, failed=self._not_applied)

    # -- state -------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``memory``, ``redis``, or ``redis-unavailable`` while counting in memory."""
        if self.redis is None:
            return "memory"
        return "redis" if self._redis_down_until <= self.clock() else "redis-unavailable"

    def redis_available(self) -> bool:
        return self.redis is not None and self._redis_down_until <= self.clock()

    def _redis_failed(self, exc: BaseException, now_ms: int) -> None:
        if not self._degraded:
            log.warning("rate-limit storage unavailable: falling back to in-memory counting "
                        "(Redis is tried again every %.0f s): %s", REDIS_RETRY_S,
                        type(exc).__name__)
            self._seed_memory()
            self._degraded = True
        self._redis_down_until = self.clock() + REDIS_RETRY_S

    def _seed_memory(self) -> None:
        """Fresh in-memory counters that start from the last counts seen in Redis."""
        self.memory = MemoryQuotaStore(self.memory_strategy)
        for key, (seen_ms, count) in self._seen.items():
            self.memory.charge(key, count, seen_ms)

    @property
    def memory_strategy(self) -> str:
        return {"f": "fixed-window", "s": "sliding-window-counter",
                "m": "moving-window"}[self.memory.strategy]

    def _merge_outage(self, now_ms: int) -> None:
        """Back on Redis: add what was admitted in memory meanwhile to the shared counters."""
        assert self.redis is not None
        if self._outage:
            self.redis.settle(Settlement(extra=tuple(self._outage.items())), now_ms)
            self._outage.clear()

    # -- admission -----------------------------------------------------------------------

    def limits_for(self, principal: Principal, tokens: int) -> tuple[LimitAsk, ...]:
        """The key's RPM (cost 1) and TPM (cost ``tokens``) limits that apply."""
        rpm = principal.rpm_limit if principal.rpm_limit is not None else self.config.default_rpm
        tpm = principal.tpm_limit if principal.tpm_limit is not None else self.config.default_tpm
        base = f"{self.config.namespace}:rl:{principal.key_id}"
        out = []
        if rpm is not None:
            out.append(LimitAsk("requests", f"{base}:requests", rpm, 1))
        if tpm is not None:
            out.append(LimitAsk("tokens", f"{base}:tokens", tpm, max(1, tokens)))
        return tuple(out)

    def admit(self, principal: Principal, *, tokens: int, reserve: Callable[[], float],
              breaker_keys: Sequence[str] = (), cache_key: str | None = None) -> Admitted:
        """Charge the caller's limits with one request of ``tokens`` and reserve
        ``reserve()`` USD (called only when a budget applies) on its budgets.

        Raises QuotaExceeded (429 with the limits' state) or InsufficientQuotaError (429);
        a refused request is charged nothing. ``breaker_keys`` and ``cache_key`` are read in
        the same Redis round trip when Redis is in use (else the answer says they were not).
        """
        limits = self.limits_for(principal, tokens)
        scopes = self.budgets.scopes(principal)
        amount = reserve() if scopes else 0.0
        now = self.clock()
        now_ms = int(now * 1000)
        if self.redis is not None and self._redis_down_until <= now:
            try:
                if self._outage:
                    self._merge_outage(now_ms)
                admitted = self._admit_redis(limits, scopes, amount, breaker_keys, cache_key,
                                             now)
                if self._degraded:
                    self._degraded = False
                    log.info("rate-limit storage recovered: counting in Redis again")
                return admitted
            except RedisError as exc:
                self._redis_failed(exc, now_ms)
        return self._admit_memory(limits, scopes, amount, now)

    def _admit_redis(self, limits: tuple[LimitAsk, ...], scopes: list[Scope], amount: float,
                     breaker_keys: Sequence[str], cache_key: str | None,
                     now: float) -> Admitted:
        assert self.redis is not None
        at = datetime.fromtimestamp(now, UTC)
        budgets = tuple(BudgetAsk(s.counter(self.config.namespace, at), s.max_budget,
                                  period_ttl(s.period)) for s in scopes)
        ask = Ask(limits, budgets, amount, tuple(breaker_keys), cache_key)
        now_ms = int(now * 1000)
        answer = self.redis.admit(ask, now_ms)
        if answer.status == UNSEEDED:
            for index in answer.unseeded:  # first use of a counter: start from the database
                self.redis.seed(budgets[index].key, self.budgets.recorded(scopes[index], at),
                                budgets[index].ttl_s)
            answer = self.redis.admit(ask, now_ms)
        for limit, state in zip(limits, answer.limits, strict=True):
            self._seen[limit.key] = (now_ms, limit.limit - state.remaining)
        self._refuse(answer, limits, scopes)
        for scope, spend in zip(scopes, answer.spends, strict=False):
            self.budgets.soft_warning(scope, spend, at)
        return Admitted(answer.limits, *self._tpm(limits), tuple(b.key for b in budgets),
                        amount, None, "redis", answer.breakers, answer.cache_entry,
                        cache_read=cache_key is not None)

    def _admit_memory(self, limits: tuple[LimitAsk, ...], scopes: list[Scope], amount: float,
                      now: float) -> Admitted:
        # Budgets first: their view may query the database (a yield); the limits' check and
        # charge then run without one, and a refusal gives the reservation back.
        local = None
        if scopes:
            try:
                local = self.budgets.admit_local(scopes, amount, datetime.fromtimestamp(now, UTC))
            except InsufficientQuotaError as err:
                raise BudgetExceeded(err.message) from None
        now_ms = int(now * 1000)
        answer = self.memory.admit(limits, now_ms)
        if answer.status != ADMITTED and local is not None:
            self.budgets.settle_local(local, 0.0)
        self._refuse(answer, limits, scopes)
        if self.redis is not None:  # an outage: remember what to merge into Redis later
            for limit in limits:
                self._outage[limit.key] = self._outage.get(limit.key, 0) + limit.cost
        return Admitted(answer.limits, *self._tpm(limits), (), amount, local, "memory")

    @staticmethod
    def _tpm(limits: tuple[LimitAsk, ...]) -> tuple[str | None, int]:
        for limit in limits:
            if limit.name == "tokens":
                return limit.key, limit.cost
        return None, 0

    def _refuse(self, answer: Answer, limits: tuple[LimitAsk, ...],
                scopes: list[Scope]) -> None:
        if answer.status == LIMITED:
            limit, state = limits[answer.index], answer.limits[answer.index]
            retry = max(1, int(state.reset_s + 0.999))
            detail = (f"this request needs {limit.cost} tokens" if limit.name == "tokens"
                      else "no request is left")
            raise QuotaExceeded(
                f"Rate limit reached for {limit.name} per minute on this API key (limit "
                f"{limit.limit}/minute; {detail}). Retry after the reset time in the "
                f"x-ratelimit-reset-{limit.name} header.", limits=answer.limits,
                retry_after=retry)
        if answer.status == OVER_BUDGET:
            refusal = self.budgets.refusal(scopes[answer.index], answer.spends[answer.index])
            raise BudgetExceeded(refusal.message, limits=answer.limits)
        if answer.status == UNSEEDED:  # seeded and still missing: expired in between
            raise RedisError("budget counter missing after seeding")

    # -- after the answer --------------------------------------------------------------

    def settle(self, admitted: Admitted, *, used_tokens: int | None, cost: float,
               cache_set: tuple[str, bytes, int] | None = None) -> None:
        """Charge tokens the estimate missed (never refunds), turn the budget reservation
        into ``cost``, store ``cache_set`` (Redis cache). In Redis this is queued for the
        settler (one command for all the requests that finished meanwhile); in memory it is
        done at once."""
        extra = 0 if used_tokens is None else used_tokens - admitted.charged_tokens
        extras = ((admitted.tpm_key, extra),) if admitted.tpm_key and extra > 0 else ()
        if admitted.local_budget is not None:
            self.budgets.settle_local(admitted.local_budget, cost)
        if admitted.backend == "redis":
            settlement = Settlement(
                extras, tuple((key, cost - admitted.reserve) for key in admitted.budget_keys),
                (cache_set,) if cache_set else ())
            if not settlement.empty:
                self.settler.put(settlement)
            return
        self._settle_in_memory(extras)

    def _settle_in_memory(self, extras: tuple[tuple[str, int], ...]) -> None:
        if not extras:
            return
        self.memory.settle(extras, int(self.clock() * 1000))
        if self.redis is not None:  # an outage: remember what to merge into Redis later
            for key, tokens in extras:
                self._outage[key] = self._outage.get(key, 0) + tokens

    def _apply(self, settlement: Settlement) -> None:
        assert self.redis is not None
        self.redis.settle(settlement, int(self.clock() * 1000))

    def _not_applied(self, settlement: Settlement, exc: BaseException) -> None:
        """Redis did not take a settlement: its extra tokens count in this worker's memory
        (and are merged into Redis when it is back); budget corrections are lost, which
        leaves the reservations in place (an over-count unless a request cost more)."""
        log.warning("could not settle %d requests' quota in Redis (%s): extra tokens count "
                    "in this worker only", len(settlement.extra), type(exc).__name__)
        if isinstance(exc, RedisError):
            self._redis_failed(exc, int(self.clock() * 1000))
        self._settle_in_memory(settlement.extra)
