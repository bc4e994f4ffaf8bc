"""The quota model of ``quota`` in Redis: one Lua script call admits, one settles.

``ADMIT`` checks every limit and budget of a request, charges all of them only when all pass,
and in the same call reads what the router and the cache need before the upstream call (the
breaker state of the candidate deployments, the response-cache entry): one round trip before
the upstream. ``SETTLE`` applies the corrections after the answer (extra tokens, the budgets'
real cost, cache entries to store), for all the requests that finished meanwhile: at most
one more per request. Both are atomic on the server, which is what
makes the limits exact across workers and instances.

Key layout (``ns`` is ``NEUROROUTE_REDIS_NAMESPACE``):

- limits: ``ns:rl:<key id>:requests`` / ``:tokens``, plus ``:<minute>`` per fixed or sliding
  window counter, or a sorted set of charges (member ``<ms>:<id>:<cost>``) and its ``:sum``
  for the moving window;
- budgets: the counters of ``app.usage.budgets`` (seeded from the database when missing);
- breakers and the cache: the keys their own modules own (read here, written there).

The script touches keys of several owners, so it needs a single Redis (or a primary with
replicas / Sentinel), not Redis Cluster. Script results are integers or strings (Lua numbers
are truncated to integers by Redis, hence milliseconds and string spends).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from app.admission.quota import (
    ADMITTED,
    LIMITED,
    OVER_BUDGET,
    STRATEGY_CODES,
    UNSEEDED,
    WINDOW_MS,
    Answer,
    Ask,
    LimitState,
    Settlement,
)

# charge(key, cost): add ``cost`` at ``now`` to one limit, in the strategy's layout.
_CHARGE = """
local function charge(key, cost)
  if layout == 'm' then
    redis.call('ZADD', key, now, now .. ':' .. member .. ':' .. cost)
    redis.call('INCRBY', key .. ':sum', cost)
    redis.call('PEXPIRE', key, win)
    redis.call('PEXPIRE', key .. ':sum', win)
  else
    local counter = key .. ':' .. wid
    redis.call('INCRBY', counter, cost)
    redis.call('PEXPIRE', counter, 2 * win)
  end
end
"""

_HEAD = """
local now, win, layout = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local member = ARGV[4]
local wid = math.floor(now / win)
"""

ADMIT = _HEAD + _CHARGE + """
local nl, nb, nk, nc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local reserve = ARGV[9]
local used, resets = {}, {}
for i = 1, nl do
  local key = KEYS[i]
  if layout == 'm' then
    local sumkey = key .. ':sum'
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - win)
    if #old > 0 then
      local drop = 0
      for _, m in ipairs(old) do drop = drop + tonumber(string.match(m, ':(%d+)$')) end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - win)
      redis.call('DECRBY', sumkey, drop)
    end
    used[i] = tonumber(redis.call('GET', sumkey) or '0')
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then resets[i] = tonumber(first[2]) + win - now else resets[i] = win end
  else
    local current = tonumber(redis.call('GET', key .. ':' .. wid) or '0')
    resets[i] = (wid + 1) * win - now
    if layout == 's' then
      local previous = tonumber(redis.call('GET', key .. ':' .. (wid - 1)) or '0')
      used[i] = math.floor(previous * (win - (now - wid * win)) / win) + current
    else
      used[i] = current
    end
  end
end
local function states(charged)
  local out = {}
  for i = 1, nl do
    local after = used[i]
    if charged then after = after + tonumber(ARGV[9 + 2 * i]) end
    out[#out + 1] = after
    out[#out + 1] = resets[i]
  end
  return out
end
for i = 1, nl do
  if used[i] + tonumber(ARGV[9 + 2 * i]) > tonumber(ARGV[8 + 2 * i]) then
    return {1, i - 1, states(false)}
  end
end
local base = 9 + 2 * nl
local spends, unseeded = {}, {}
for j = 1, nb do
  local spend = redis.call('GET', KEYS[nl + j])
  if spend then spends[j] = spend else
    spends[j] = '0'
    unseeded[#unseeded + 1] = j - 1
  end
end
if #unseeded > 0 then return {3, unseeded[1], states(false), spends, unseeded} end
for j = 1, nb do
  if tonumber(spends[j]) >= tonumber(ARGV[base + 2 * j - 1]) then
    return {2, j - 1, states(false), spends}
  end
end
for i = 1, nl do charge(KEYS[i], tonumber(ARGV[9 + 2 * i])) end
for j = 1, nb do
  local key = KEYS[nl + j]
  spends[j] = redis.call('INCRBYFLOAT', key, reserve)
  local ttl = tonumber(ARGV[base + 2 * j])
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
local reads = {}
for k = 1, nk + nc do reads[k] = redis.call('GET', KEYS[nl + nb + k]) or '' end
return {0, 0, states(true), spends, {}, reads}
"""

SETTLE = _HEAD + _CHARGE + """
local ne, nb, nc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
for i = 1, ne do charge(KEYS[i], tonumber(ARGV[7 + i])) end
for j = 1, nb do
  -- A counter that expired meanwhile (a new period) is not recreated by a correction.
  local key = KEYS[ne + j]
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBYFLOAT', key, ARGV[7 + ne + j]) end
end
for k = 1, nc do
  local at = 7 + ne + nb + 2 * k
  redis.call('SET', KEYS[ne + nb + k], ARGV[at - 1], 'EX', ARGV[at])
end
return 1
"""


class ScriptCaller:
    """EVALSHA on a small pool of redis-py connections of its own.

    ``Redis.execute_command`` costs about 150 us of CPU per call in a gevent worker (measured
    in the S1 profile: retry and observability wrappers, the pool's lock and its readability
    poll of every connection it hands out), more than the script itself. The admission path
    needs none of it: a connection is taken from a LIFO list, one packed command is sent, its
    reply read in full, and the connection put back; any error but a Redis error reply
    disconnects it. A connection that fails at once after reuse (Redis restarted) is
    replaced and the call sent again, once. A script Redis does not know (restarted, flushed)
    is loaded and the call repeated. At most :attr:`MAX_CONNECTIONS` calls are in flight per
    worker; more wait for a connection (a burst of 2,000 requests would otherwise open 2,000
    connections to Redis, and the process would keep their memory).
    """

    MAX_CONNECTIONS = 64

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        self._factory = pool.connection_class
        self._kwargs = dict(pool.connection_kwargs)
        self._idle: list[Any] = []
        self._busy = 0

    def _send(self, args: tuple[Any, ...]) -> Any:
        # A counter, not a semaphore (threading's costs ~3 us a call under gevent): between
        # its check and its increment nothing yields in a gevent worker; the rare wait polls.
        while self._busy >= self.MAX_CONNECTIONS:
            time.sleep(0.001)
        self._busy += 1
        try:
            return self._send_on_a_connection(args)
        finally:
            self._busy -= 1

    def _send_on_a_connection(self, args: tuple[Any, ...]) -> Any:
        for attempt in (1, 2):
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else self._factory(**self._kwargs)
            try:
                conn.send_packed_command(conn.pack_command(*args), check_health=False)
                reply = conn.read_response()
            except ResponseError:
                self._keep(conn)  # an error reply: the connection itself is fine
                raise
            except RedisConnectionError:
                conn.disconnect()
                if reused and attempt == 1:
                    continue  # a stale pooled connection: once more on a fresh one
                raise
            except BaseException:
                conn.disconnect()
                raise
            self._keep(conn)
            return reply
        raise AssertionError("unreachable")

    def _keep(self, conn: Any) -> None:
        self._idle.append(conn)  # at most MAX_CONNECTIONS exist

    def evalsha(self, sha: str, source: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._send(("EVALSHA", sha, len(keys), *keys, *args))
        except NoScriptError:
            self._send(("SCRIPT", "LOAD", source))
            return self._send(("EVALSHA", sha, len(keys), *keys, *args))


class _Script:
    def __init__(self, caller: ScriptCaller, source: str) -> None:
        self.caller = caller
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        return self.caller.evalsha(self.sha, self.source, keys, args)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisQuotaStore:
    """Admission and settlement in Redis, one script call each."""

    def __init__(self, client: Any, *, strategy: str = "fixed-window") -> None:
        self.client = client
        self.strategy = STRATEGY_CODES[strategy]
        caller = ScriptCaller(client)
        self._admit = _Script(caller, ADMIT)
        self._settle = _Script(caller, SETTLE)

    def _head(self, now_ms: int) -> list[Any]:
        return [now_ms, WINDOW_MS, self.strategy, uuid.uuid4().hex[:16]]

    def admit(self, ask: Ask, now_ms: int) -> Answer:
        """Run ADMIT; raises redis.RedisError (the caller falls back to memory)."""
        reads = (*ask.breaker_keys, *((ask.cache_key,) if ask.cache_key else ()))
        keys = [*(limit.key for limit in ask.limits), *(b.key for b in ask.budgets), *reads]
        args: list[Any] = [*self._head(now_ms), len(ask.limits), len(ask.budgets),
                           len(ask.breaker_keys), 1 if ask.cache_key else 0, repr(ask.reserve)]
        for limit in ask.limits:
            args += [limit.limit, limit.cost]
        for budget in ask.budgets:
            args += [repr(budget.max_budget), budget.ttl_s]
        reply = self._admit(keys, args)
        status, index, flat = int(reply[0]), int(reply[1]), reply[2]
        states = tuple(
            LimitState(limit.name, limit.limit, max(0, limit.limit - int(flat[2 * i])),
                       max(0, int(flat[2 * i + 1])) / 1000)
            for i, limit in enumerate(ask.limits))
        if status == LIMITED:
            return Answer(LIMITED, index, states)
        spends = tuple(float(_text(v)) for v in reply[3])
        if status in (OVER_BUDGET, UNSEEDED):
            unseeded = tuple(int(i) for i in reply[4]) if status == UNSEEDED else ()
            return Answer(status, index, states, spends, unseeded)
        values = reply[5]
        breakers = {key: float(_text(v)) for key, v in zip(ask.breaker_keys, values,
                                                             strict=False) if v}
        cache_entry = None
        if ask.cache_key and values[-1]:
            cache_entry = bytes(values[-1])
        return Answer(ADMITTED, 0, states, spends, (), breakers, cache_entry)

    def settle(self, settlement: Settlement, now_ms: int) -> None:
        """Run SETTLE; raises redis.RedisError."""
        keys = [*(key for key, _ in settlement.extra), *(key for key, _ in settlement.budgets)]
        args: list[Any] = [*self._head(now_ms), len(settlement.extra), len(settlement.budgets),
                           len(settlement.cache_sets)]
        args += [tokens for _, tokens in settlement.extra]
        args += [repr(delta) for _, delta in settlement.budgets]
        for key, value, ttl in settlement.cache_sets:
            keys.append(key)
            args += [value, max(1, ttl)]
        self._settle(keys, args)

    def seed(self, key: str, spend: float, ttl_s: int) -> None:
        """Start a budget counter from the recorded spend (if no other worker did first)."""
        self.client.set(key, repr(spend), nx=True, ex=ttl_s or None)
