"""Exact-match response cache for chat completions (flask-caching).

Opt-in per model in the YAML (``cache: {ttl, scope}`` on a deployment) and per request
(``Cache-Control: no-cache`` = do not answer from the cache, ``no-store`` = neither read nor
write). Only complete non-stream answers are stored; a streamed request that hits is replayed
as a proper SSE stream. Entries are scoped to the caller's team (or key, without a team)
unless the model's scope is ``global``, so one team never sees another's answers.

``SimpleCache`` (per process) by default, ``RedisCache`` when ``NEUROROUTE_REDIS_URL`` is set
(shared by all workers and instances). A cache failure is never a request failure: Redis
errors make the request a ``skip``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Flask
from flask_caching import Cache

from app.providers.base import ChatResult, ChatStream, Usage
from app.settings import CachePolicy, Settings
from app.streaming import DONE_EVENT, sse_event

log = logging.getLogger(__name__)

# Request fields that change what the model answers; everything else (stream, user,
# metadata, ...) does not make a different cache entry.
KEY_FIELDS = ("model", "messages", "temperature", "top_p", "n", "stop", "max_tokens",
              "max_completion_tokens", "seed", "tools", "tool_choice", "response_format",
              "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
              "top_logprobs", "functions", "function_call", "reasoning_effort", "modalities",
              # embeddings and legacy completions
              "input", "encoding_format", "dimensions", "prompt", "suffix", "echo", "best_of")

HIT, MISS, SKIP = "hit", "miss", "skip"
REPLAY_PIECES = 8  # a cached answer is replayed in a few chunks, like a real stream


@dataclass(slots=True)
class Lookup:
    """The cache decision for one request."""

    status: str  # hit | miss | skip
    key: str | None = None
    ttl: int = 0
    result: ChatResult | None = None
    deployment: str | None = None
    read: bool = False  # the entry still has to be read (see ResponseCache.redis_key)


def cache_key(body: dict[str, Any], scope: str, api: str = "chat.completions") -> str:
    """The entry of ``body`` (the pipeline's request body) for a client of ``api``: each API
    has its own entries, as what is stored is the answer in that API."""
    canonical = {name: body[name] for name in KEY_FIELDS if name in body}
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    prefix = "chat" if api == "chat.completions" else api
    return f"{prefix}:{scope}:{digest}"


def scope_for(policy: CachePolicy, *, key_id: str, team_id: str | None) -> str:
    if policy.scope == "global":
        return "global"
    if policy.scope == "team" and team_id:
        return f"team:{team_id}"
    return f"key:{key_id}"


class ResponseCache:
    """The response cache. With Redis, the entry is read in the admission round trip
    (:meth:`redis_key`, :meth:`resolve`) and written by the settlement after the answer
    (:meth:`keep`): the cache adds no Redis command of its own to a request."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        config: dict[str, Any] = {"CACHE_DEFAULT_TIMEOUT": settings.cache_ttl,
                                  "CACHE_KEY_PREFIX": f"{settings.redis_namespace}:"}
        if settings.redis_url:
            config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=settings.redis_url,
                          CACHE_OPTIONS={"socket_timeout": 0.25, "socket_connect_timeout": 0.25})
        else:
            config.update(CACHE_TYPE="SimpleCache", CACHE_THRESHOLD=10_000)
        self.cache = Cache(config=config)
        self.cache.init_app(app)
        self.shared = bool(settings.redis_url)
        self.default_ttl = settings.cache_ttl
        self.healthy = True

    def plan(self, body: dict[str, Any], policy: CachePolicy | None, *, key_id: str,
             team_id: str | None, cache_control: str,
             api: str = "chat.completions") -> Lookup:
        """What to do for this request: skip, fetch fresh (``no-cache``), or look up."""
        if policy is None:
            return Lookup(SKIP)
        directives = {d.strip().lower() for d in cache_control.split(",") if d.strip()}
        if "no-store" in directives:
            return Lookup(SKIP)
        key = cache_key(body, scope_for(policy, key_id=key_id, team_id=team_id), api)
        ttl = policy.ttl or self.default_ttl
        if "no-cache" in directives:
            return Lookup(MISS, key, ttl)  # fetch fresh, but keep the fresh answer
        return Lookup(MISS, key, ttl, read=True)

    def redis_key(self, lookup: Lookup) -> str | None:
        """The Redis key to read in the admission round trip (None: nothing to read there)."""
        if not (self.shared and lookup.read and lookup.key):
            return None
        backend: Any = self.cache.cache
        return f"{backend._get_prefix()}{lookup.key}"

    def resolve(self, lookup: Lookup, *, raw: bytes | None, was_read: bool,
                available: bool = True) -> Lookup:
        """The lookup's outcome, given the raw entry read in the admission round trip
        (``was_read``), or read here (in-process cache). ``available``: False while Redis is
        unreachable (the request then skips the cache)."""
        if not lookup.read:
            return lookup
        if self.shared and not (available and was_read):
            self._failed("read", None)
            return Lookup(SKIP)
        try:
            if was_read:
                entry = self.cache.cache.serializer.loads(raw) if raw else None
            else:
                entry = self.cache.get(lookup.key)
        except Exception as exc:  # noqa: BLE001 - an unreadable entry is a miss, not an error
            self._failed("read", exc)
            return Lookup(MISS, lookup.key, lookup.ttl)
        self.healthy = True
        if not isinstance(entry, dict):
            return Lookup(MISS, lookup.key, lookup.ttl)
        usage = Usage(*entry["usage"]) if entry.get("usage") else None
        return Lookup(HIT, lookup.key, lookup.ttl, ChatResult(entry["body"], usage),
                      entry.get("deployment"))

    def keep(self, lookup: Lookup, result: ChatResult,
             deployment: str) -> tuple[str, bytes, int] | None:
        """After a miss: with Redis, the (key, value, ttl) for the settlement to store;
        in process, stored here at once (None is returned)."""
        if lookup.key is None or result.status != 200:
            return None
        usage = result.usage
        value = {"body": result.body, "deployment": deployment, "stored_at": time.time(),
                 "usage": None if usage is None else (usage.prompt_tokens,
                                                      usage.completion_tokens,
                                                      usage.total_tokens, usage.estimated)}
        backend: Any = self.cache.cache
        if self.shared:
            return (f"{backend._get_prefix()}{lookup.key}", backend.serializer.dumps(value),
                    lookup.ttl)
        self.cache.set(lookup.key, value, timeout=lookup.ttl)
        return None

    def _failed(self, what: str, exc: Exception | None) -> None:
        if self.healthy:
            log.warning("response cache %s failed, skipping the cache: %s", what,
                        type(exc).__name__ if exc else "Redis unavailable")
        self.healthy = False


def replay_as_stream(result: ChatResult, *, include_usage: bool) -> ChatStream:
    """A cached completion as the SSE stream the upstream would have sent."""
    stream = ChatStream()
    stream.usage = result.usage
    return stream.attach(_replay_events(orjson.loads(result.body), include_usage, stream))


def _replay_events(completion: dict[str, Any], include_usage: bool,
                   stream: ChatStream) -> Iterator[bytes]:
    base = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint")
            if completion.get(key) is not None}
    base["object"] = "chat.completion.chunk"
    if include_usage:
        base["usage"] = None
    for choice in completion.get("choices", []):
        index = choice.get("index", 0)
        message = choice.get("message") or {}

        def chunk(delta: dict[str, Any], finish: str | None = None, i: int = index) -> bytes:
            return sse_event({**base, "choices": [{"index": i, "delta": delta,
                                                   "logprobs": None, "finish_reason": finish}]})

        yield chunk({"role": message.get("role", "assistant"), "content": ""})
        content = message.get("content") or ""
        step = max(1, -(-len(content) // REPLAY_PIECES))
        for start in range(0, len(content), step):
            yield chunk({"content": content[start:start + step]})
        for position, call in enumerate(message.get("tool_calls") or []):
            yield chunk({"tool_calls": [{"index": position, **call}]})
        yield chunk({}, choice.get("finish_reason") or "stop")
    if include_usage and completion.get("usage"):
        yield sse_event({**base, "choices": [], "usage": completion["usage"]})
    stream.completed = True
    yield DONE_EVENT


class ModelListCache:
    """``/v1/models`` answers, cached briefly in this process (keyed by the key's allowlist)."""

    TTL_SECONDS = 5

    def __init__(self, app: Flask) -> None:
        self.cache = Cache(config={"CACHE_TYPE": "SimpleCache",
                                   "CACHE_DEFAULT_TIMEOUT": self.TTL_SECONDS})
        self.cache.init_app(app)

    @staticmethod
    def key(allowed: frozenset[str] | None) -> str:
        return "models:*" if allowed is None else "models:" + "\x1f".join(sorted(allowed))

    def get(self, allowed: frozenset[str] | None) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.cache.get(self.key(allowed))
        return value

    def set(self, allowed: frozenset[str] | None, listing: dict[str, Any]) -> None:
        self.cache.set(self.key(allowed), listing)

    def clear(self) -> None:
        """Forget every listing (the registry changed)."""
        self.cache.clear()
