"""Client API keys: generation, hashing, the cached view of a key, and "last used" batching.

A key is ``sk-nr-`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored: with that much entropy a fast hash is enough (nobody can brute-force 2^256), and it
lets the key be found with one indexed lookup. ``prefix`` (the first 12 characters) is kept in
clear so people can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

KEY_PREFIX = "sk-nr-"
VISIBLE_PREFIX_LEN = 12
KEY_RANDOM_BYTES = 32


def generate_key() -> str:
    """A new random client key (shown once to its owner, never stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visible_prefix(key: str) -> str:
    """The part of a key kept in clear to tell keys apart."""
    return key[:VISIBLE_PREFIX_LEN]


def looks_like_client_key(token: str) -> bool:
    """Cheap shape check, so random junk never costs a cache slot or a database query."""
    return token.startswith(KEY_PREFIX) and 20 <= len(token) <= 128


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What authentication needs to know about a key: an immutable copy of its row."""

    id: str
    role: str
    allowed_models: frozenset[str] | None
    user_id: str | None
    team_id: str | None
    rpm_limit: int | None
    tpm_limit: int | None
    max_budget: float | None
    budget_period: str | None
    expires_at: datetime | None
    revoked: bool
    disabled: bool


KeyLookup = Callable[[str], KeyRecord | None]


class KeyCache:
    """key hash -> (record or None for "no such key", time fetched), bounded in size.

    Entries older than ``ttl`` are re-read from the database, but kept to serve if the
    database is down. ``clear()`` is called when another process changed any key.
    """

    def __init__(self, *, ttl: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[KeyRecord | None, float]] = {}
        # Bumped by clear(). A lookup that started before a clear() may have read the row
        # before the change; put() drops its result instead of caching it for a whole TTL.
        self.generation = 0

    def get(self, digest: str) -> tuple[KeyRecord | None, bool] | None:
        """``(record, fresh)`` for a cached hash, or None when the hash was never looked up."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        record, fetched = entry
        return record, self._clock() - fetched < self._ttl

    def put(self, digest: str, record: KeyRecord | None, generation: int | None = None) -> None:
        """Cache a lookup result, unless the cache was cleared since ``generation``."""
        if generation is not None and generation != self.generation:
            return
        if digest not in self._entries and len(self._entries) >= self._max:
            # Evict the oldest insertion: simple, bounded, and a miss only costs one query.
            self._entries.pop(next(iter(self._entries)))
        self._entries[digest] = (record, self._clock())

    def clear(self) -> None:
        """Drop every entry (another process changed a key)."""
        self._entries.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._entries)


class LastUsedTracker:
    """Collects "key X was used at T" in memory; the sync loop writes it in one batch.

    One dict assignment per request instead of one database write per request.
    """

    def __init__(self) -> None:
        self._pending: dict[str, datetime] = {}

    def touch(self, key_id: str, at: datetime) -> None:
        """Remember that ``key_id`` was used at ``at`` (cheap: one dict write)."""
        self._pending[key_id] = at

    def drain(self) -> dict[str, datetime]:
        """Take the pending batch, leaving the tracker empty."""
        pending, self._pending = self._pending, {}
        return pending

    def restore(self, pending: dict[str, datetime]) -> None:
        """Put back a batch that could not be written (newer touches win)."""
        for key_id, at in pending.items():
            self._pending.setdefault(key_id, at)

    def __len__(self) -> int:
        return len(self._pending)
