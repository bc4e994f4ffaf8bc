"""Per-deployment circuit breakers ("cooldowns").

``failures`` failures within ``window_s`` open a deployment's breaker: it is skipped for
``cooldown_s``. Then it is half-open: exactly one request (the probe) may try it; a success
closes the breaker, a failure opens it again for another ``cooldown_s``.

The state lives in a store: in process by default, in Redis when ``NEUROROUTE_REDIS_URL`` is
set, so every worker and every instance sees a deployment go down at once. Redis is a help,
never a dependency: any Redis error switches to the in-process store for a few seconds
(fail open: a request is never refused because Redis is down).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from app.settings import CooldownPolicy

log = logging.getLogger(__name__)

# A Redis error makes the breaker use the in-process store for this long before trying again,
# so a dead Redis costs one connect timeout per few seconds, not one per request.
REDIS_RETRY_AFTER_S = 5.0
# Open-breaker records outlive their cooldown so the half-open state can be observed; a
# deployment nobody probes for a day is simply closed again.
OPEN_RECORD_GRACE_S = 86_400.0


class Admission(Enum):
    """Whether an attempt may go to a deployment."""

    CLOSED = "closed"  # healthy: go
    PROBE = "probe"  # half-open: go, this attempt decides whether the breaker closes
    OPEN = "open"  # cooling down (or another request holds the probe): skip
    FORCED = "forced"  # open, but tried anyway: no other deployment or fallback was left


@dataclass(frozen=True, slots=True)
class BreakerView:
    """A breaker's state for display."""

    state: str  # closed | open | half_open
    open_for_s: float = 0.0
    recent_failures: int = 0


class CooldownStore(Protocol):
    """Where breaker state lives; every method takes the caller's clock reading ``now``."""

    def open_until(self, ids: Sequence[str]) -> dict[str, float]:
        """For each id with an open (or half-open) breaker: when its cooldown ends."""

    def try_probe(self, dep_id: str, now: float, ttl: float) -> bool:
        """Claim the single half-open probe; False if another request holds it."""

    def record_failure(self, dep_id: str, now: float, policy: CooldownPolicy) -> bool:
        """Count a failure; True if the breaker is open afterwards."""

    def record_success(self, dep_id: str, now: float, force: bool) -> None:
        """Close the breaker if it is half-open (or open, with ``force``)."""

    def recent_failures(self, dep_id: str, now: float, window: float) -> int:
        """Failures counted in the current window (for display)."""


class MemoryCooldownStore:
    """Breaker state of this process only."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._open_until: dict[str, float] = {}
        self._probe_until: dict[str, float] = {}

    def open_until(self, ids: Sequence[str]) -> dict[str, float]:
        return {i: self._open_until[i] for i in ids if i in self._open_until}

    def try_probe(self, dep_id: str, now: float, ttl: float) -> bool:
        if self._probe_until.get(dep_id, 0.0) > now:
            return False
        self._probe_until[dep_id] = now + ttl
        return True

    def record_failure(self, dep_id: str, now: float, policy: CooldownPolicy) -> bool:
        until = self._open_until.get(dep_id)
        if until is not None:
            if now >= until:  # the half-open probe (or a request racing it) failed: reopen
                self._open_until[dep_id] = now + policy.cooldown_s
                self._probe_until.pop(dep_id, None)
            return True
        failures = self._failures.setdefault(dep_id, deque())
        failures.append(now)
        while failures and failures[0] <= now - policy.window_s:
            failures.popleft()
        if len(failures) >= policy.failures:
            self._open_until[dep_id] = now + policy.cooldown_s
            failures.clear()
            return True
        return False

    def record_success(self, dep_id: str, now: float, force: bool) -> None:
        until = self._open_until.get(dep_id)
        if until is not None and (force or now >= until):
            del self._open_until[dep_id]
            self._probe_until.pop(dep_id, None)
            self._failures.pop(dep_id, None)

    def recent_failures(self, dep_id: str, now: float, window: float) -> int:
        return sum(1 for t in self._failures.get(dep_id, ()) if t > now - window)


_FAILURE_SCRIPT = """
local open_until = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[1])
if open_until then
  if now >= tonumber(open_until) then
    redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[6])
    redis.call('DEL', KEYS[3])
  end
  return 1
end
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[6])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

_SUCCESS_SCRIPT = """
local open_until = redis.call('GET', KEYS[1])
if open_until and (ARGV[2] == '1' or tonumber(ARGV[1]) >= tonumber(open_until)) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 1
end
return 0
"""


class RedisCooldownStore:
    """Breaker state in Redis, shared by every worker and instance using the same prefix.

    Each update is one Lua script, so concurrent workers cannot lose a failure or open a
    breaker twice; the half-open probe is a ``SET NX`` that exactly one request wins.
    """

    def __init__(self, client: Any, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._failure = client.register_script(_FAILURE_SCRIPT)
        self._success = client.register_script(_SUCCESS_SCRIPT)

    def _keys(self, dep_id: str) -> list[str]:
        # The {hash tag} keeps one deployment's keys in one slot (Redis Cluster, Lua).
        base = f"{self.prefix}:cb:{{{dep_id}}}"
        return [f"{base}:open", f"{base}:fail", f"{base}:probe"]

    def open_key(self, dep_id: str) -> str:
        """The key holding when the deployment's breaker closes (absent: closed)."""
        return self._keys(dep_id)[0]

    def open_until(self, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        values = self.client.mget([self._keys(i)[0] for i in ids])
        return {i: float(v) for i, v in zip(ids, values, strict=True) if v is not None}

    def try_probe(self, dep_id: str, now: float, ttl: float) -> bool:
        return bool(self.client.set(self._keys(dep_id)[2], "1", nx=True,
                                    px=max(1, int(ttl * 1000))))

    def record_failure(self, dep_id: str, now: float, policy: CooldownPolicy) -> bool:
        args = [repr(now), repr(now - policy.window_s), policy.failures,
                repr(now + policy.cooldown_s), uuid.uuid4().hex,
                int((policy.cooldown_s + OPEN_RECORD_GRACE_S) * 1000),
                int(policy.window_s * 1000) + 1]
        return bool(self._failure(keys=self._keys(dep_id), args=args))

    def record_success(self, dep_id: str, now: float, force: bool) -> None:
        self._success(keys=self._keys(dep_id), args=[repr(now), "1" if force else "0"])

    def recent_failures(self, dep_id: str, now: float, window: float) -> int:
        return int(self.client.zcount(self._keys(dep_id)[1], f"({now - window!r}", "+inf"))


class CircuitBreaker:
    """The breakers of every deployment, over a store; Redis failures fall back in-process."""

    def __init__(self, policy: CooldownPolicy, *, store: CooldownStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.clock = clock  # wall clock: a Redis store compares readings of several hosts
        self.shared = store
        self.local = MemoryCooldownStore()
        self._shared_down_until = 0.0

    @property
    def backend(self) -> str:
        """``memory``, ``redis``, or ``redis-unavailable`` while falling back in-process."""
        if self.shared is None:
            return "memory"
        return "redis" if self._shared_down_until <= self.clock() else "redis-unavailable"

    def _call(self, method: str, *args: Any) -> Any:
        """Run ``method`` on the shared store, or on the local one if Redis fails (fail open)."""
        if self.shared is not None and self._shared_down_until <= self.clock():
            try:
                return getattr(self.shared, method)(*args)
            except (RedisError, OSError) as exc:
                self._shared_down_until = self.clock() + REDIS_RETRY_AFTER_S
                log.warning("cooldown store unavailable, using in-process state for %.0f s: "
                            "%s", REDIS_RETRY_AFTER_S, type(exc).__name__)
        return getattr(self.local, method)(*args)

    def prefetch_keys(self, ids: Sequence[str]) -> dict[str, str]:
        """Store key -> deployment id of what the admission round trip should read for these
        deployments (empty when the state is in process: nothing to save)."""
        store = self.shared
        if not isinstance(store, RedisCooldownStore) or self._shared_down_until > self.clock():
            return {}
        return {store.open_key(i): i for i in ids}

    def open_until(self, ids: Sequence[str],
                   prefetched: Mapping[str, float | None] | None = None) -> dict[str, float]:
        """Deployments among ``ids`` whose breaker is open or half-open, with its end time.

        ``prefetched`` (deployment id -> open until, None: closed) is what the admission round
        trip read; it answers without a store call when it covers every id.
        """
        if prefetched is not None and all(i in prefetched for i in ids):
            return {i: until for i in ids if (until := prefetched[i]) is not None}
        result: dict[str, float] = self._call("open_until", list(ids))
        return result

    def admit(self, dep_id: str, open_until: float | None) -> Admission:
        """May an attempt go to ``dep_id``? ``open_until`` comes from :meth:`open_until`."""
        if open_until is None:
            return Admission.CLOSED
        now = self.clock()
        if now < open_until:
            return Admission.OPEN
        if self._call("try_probe", dep_id, now, self.policy.cooldown_s):
            return Admission.PROBE
        return Admission.OPEN

    def success(self, dep_id: str, admission: Admission) -> None:
        """Report a success; only a probe (or forced attempt) needs to touch the store.

        A success that started before the breaker opened does not close it; one that was
        admitted as the probe, or forced through an open breaker, does.
        """
        if admission is not Admission.CLOSED:
            self._call("record_success", dep_id, self.clock(), admission is Admission.FORCED)

    def failure(self, dep_id: str) -> bool:
        """Report a failure; True if the breaker is open afterwards."""
        opened: bool = self._call("record_failure", dep_id, self.clock(), self.policy)
        if opened:
            log.info("deployment %s is cooling down", dep_id)
        return opened

    def view(self, ids: Sequence[str]) -> dict[str, BreakerView]:
        """State of every breaker in ``ids``, for /admin/routing and readiness."""
        now = self.clock()
        opened = self.open_until(ids)
        views = {}
        for dep_id in ids:
            until = opened.get(dep_id)
            failures = self._call("recent_failures", dep_id, now, self.policy.window_s)
            if until is None:
                views[dep_id] = BreakerView("closed", 0.0, failures)
            elif now < until:
                views[dep_id] = BreakerView("open", round(until - now, 3), failures)
            else:
                views[dep_id] = BreakerView("half_open", 0.0, failures)
        return views


def build_breaker(policy: CooldownPolicy, *, redis_url: str | None, prefix: str,
                  clock: Callable[[], float] = time.time) -> CircuitBreaker:
    """A breaker over Redis when ``redis_url`` is set, in-process otherwise."""
    store: CooldownStore | None = None
    if redis_url:
        # No client-side retries: a slow Redis must not slow requests down; the breaker
        # falls back in-process instead.
        client = redis.Redis.from_url(redis_url, socket_timeout=0.5,
                                      socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
        store = RedisCooldownStore(client, prefix=prefix)
    return CircuitBreaker(policy, store=store, clock=clock)
