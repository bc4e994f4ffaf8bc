"""Client keys: format and hashing, the TTL cache, and the Authenticator's decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from app.auth.keys import (
    KEY_PREFIX,
    KeyCache,
    KeyRecord,
    LastUsedTracker,
    generate_key,
    hash_key,
    visible_prefix,
)
from app.auth.service import MASTER_PRINCIPAL, Authenticator
from app.errors import AuthenticationError, ServiceUnavailableError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MASTER = "sk-test-master-key"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeStore:
    """A key store that counts lookups and can be switched off like a database outage."""

    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.calls = 0
        self.down = False

    def add(self, record: KeyRecord) -> str:
        key = generate_key()
        self.records[hash_key(key)] = record
        return key

    def lookup(self, digest: str) -> KeyRecord | None:
        self.calls += 1
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return self.records.get(digest)


def record(**overrides: object) -> KeyRecord:
    base = KeyRecord(id="key_1", role="member", allowed_models=None, user_id=None, team_id=None,
                     rpm_limit=None, tpm_limit=None, max_budget=None, budget_period=None,
                     expires_at=None, revoked=False, disabled=False)
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(store: FakeStore, clock: Clock) -> Authenticator:
    return Authenticator(master_key=MASTER, lookup=store.lookup,
                         cache=KeyCache(ttl=60, clock=clock), now=lambda: NOW)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_generated_keys_are_random_prefixed_and_only_hashed() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) >= 40
    assert hash_key(a) == hash_key(a) and len(hash_key(a)) == 64 and a not in hash_key(a)
    assert visible_prefix(a) == a[:12]


def test_master_key_is_the_bootstrap_admin(auth: Authenticator, store: FakeStore) -> None:
    assert auth.authenticate(bearer(MASTER)) is MASTER_PRINCIPAL
    assert store.calls == 0


def test_a_known_key_costs_one_lookup_then_none(auth: Authenticator, store: FakeStore) -> None:
    key = store.add(record(role="admin", allowed_models=frozenset({"m"}), team_id="team_1"))
    for _ in range(5):
        principal = auth.authenticate(bearer(key))
    assert store.calls == 1
    assert principal.key_id == "key_1" and principal.is_admin
    assert principal.may_use("m") and not principal.may_use("other")
    assert principal.team_id == "team_1"


def test_cache_entries_expire_after_the_ttl(auth: Authenticator, store: FakeStore,
                                           clock: Clock) -> None:
    key = store.add(record())
    auth.authenticate(bearer(key))
    clock.t += 61
    auth.authenticate(bearer(key))
    assert store.calls == 2


def test_unknown_keys_are_cached_negatively(auth: Authenticator, store: FakeStore) -> None:
    for _ in range(3):
        with pytest.raises(AuthenticationError) as info:
            auth.authenticate(bearer(generate_key()[:-1] + "A"))
        assert info.value.code == "invalid_api_key"
    assert store.calls == 3  # three different keys
    unknown = generate_key()
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bearer(unknown))
    assert store.calls == 4


def test_tokens_that_are_not_client_keys_never_reach_the_store(auth: Authenticator,
                                                               store: FakeStore) -> None:
    for token in ("sk-wrong", "x" * 60, "sk-nr-short"):
        with pytest.raises(AuthenticationError):
            auth.authenticate(bearer(token))
    assert store.calls == 0


@pytest.mark.parametrize(("fields", "code", "words"), [
    ({"revoked": True}, "api_key_revoked", "revoked"),
    ({"disabled": True}, "api_key_disabled", "disabled"),
    ({"expires_at": NOW - timedelta(seconds=1)}, "api_key_expired", "expired"),
    ({"expires_at": NOW}, "api_key_expired", "expired"),
])
def test_unusable_keys_are_401_saying_why(auth: Authenticator, store: FakeStore,
                                         fields: dict[str, object], code: str,
                                         words: str) -> None:
    key = store.add(record(**fields))
    with pytest.raises(AuthenticationError) as info:
        auth.authenticate(bearer(key))
    assert info.value.status == 401 and info.value.code == code
    assert words in info.value.message


def test_key_expiring_later_works(auth: Authenticator, store: FakeStore) -> None:
    key = store.add(record(expires_at=NOW + timedelta(seconds=1)))
    assert auth.authenticate(bearer(key)).key_id == "key_1"


def test_clearing_the_cache_makes_a_revocation_visible(auth: Authenticator,
                                                       store: FakeStore) -> None:
    key = store.add(record())
    auth.authenticate(bearer(key))
    store.records[hash_key(key)] = record(revoked=True)
    auth.authenticate(bearer(key))  # still cached: the sync loop has not cleared it yet
    auth.cache.clear()
    with pytest.raises(AuthenticationError) as info:
        auth.authenticate(bearer(key))
    assert info.value.code == "api_key_revoked"


def test_database_down_cached_keys_keep_working(auth: Authenticator, store: FakeStore,
                                                clock: Clock) -> None:
    key = store.add(record())
    auth.authenticate(bearer(key))
    store.down = True
    clock.t += 3600  # long past the TTL: the stale entry is served rather than failing
    assert auth.authenticate(bearer(key)).key_id == "key_1"
    calls = store.calls
    for _ in range(5):  # and the dead database is not asked again for this key until the TTL
        assert auth.authenticate(bearer(key)).key_id == "key_1"
    assert store.calls == calls


def test_database_down_unknown_keys_get_503(auth: Authenticator, store: FakeStore) -> None:
    store.down = True
    with pytest.raises(ServiceUnavailableError) as info:
        auth.authenticate(bearer(generate_key()))
    assert info.value.status == 503 and info.value.code == "key_store_unavailable"


def test_use_is_recorded_in_memory_not_written(auth: Authenticator, store: FakeStore) -> None:
    key = store.add(record())
    auth.authenticate(bearer(key))
    assert auth.last_used.drain() == {"key_1": NOW}
    assert auth.last_used.drain() == {}


def test_cache_is_bounded() -> None:
    cache = KeyCache(ttl=60, max_entries=3)
    for i in range(5):
        cache.put(f"h{i}", None)
    assert len(cache) == 3
    assert cache.get("h0") is None and cache.get("h4") == (None, True)


def test_last_used_restore_keeps_newer_touches() -> None:
    tracker = LastUsedTracker()
    tracker.touch("a", NOW)
    batch = tracker.drain()
    tracker.touch("a", NOW + timedelta(seconds=5))
    tracker.restore(batch)
    tracker.restore({"b": NOW})
    assert tracker.drain() == {"a": NOW + timedelta(seconds=5), "b": NOW}


def test_a_lookup_racing_a_clear_is_not_cached(store: FakeStore, clock: Clock) -> None:
    """A lookup that read the row before a revocation must not re-fill the cleared cache."""
    cache = KeyCache(ttl=60, clock=clock)
    key = store.add(record())

    def slow_lookup(digest: str) -> KeyRecord | None:
        found = store.lookup(digest)  # reads the row as it was...
        cache.clear()  # ...while another greenlet applies a revocation and clears the cache
        store.records[digest] = record(revoked=True)
        return found

    auth = Authenticator(master_key=MASTER, lookup=slow_lookup, cache=cache, now=lambda: NOW)
    assert auth.authenticate(bearer(key)).key_id == "key_1"  # answered with what it read
    assert len(cache) == 0  # but not cached: the next request reads the revocation
    auth_after = Authenticator(master_key=MASTER, lookup=store.lookup, cache=cache,
                               now=lambda: NOW)
    with pytest.raises(AuthenticationError) as info:
        auth_after.authenticate(bearer(key))
    assert info.value.code == "api_key_revoked"
