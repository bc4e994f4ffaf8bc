"""Console sessions without HTTP: what the cookie carries, expiry, tampering, re-resolution of
the key on every check, CSRF, and the signing key shared by processes (never per process)."""

from __future__ import annotations

from typing import Any

import pytest
from itsdangerous import URLSafeSerializer

from app.auth.keys import KeyCache, hash_key
from app.auth.service import MASTER_PRINCIPAL, Authenticator
from app.auth.sessions import ConsoleSessions
from app.errors import AuthenticationError, PermissionDeniedError
from tests.unit.test_auth_keys import MASTER, NOW, Clock, FakeStore, record

TTL = 3600


def sessions(store: FakeStore, clock: Clock, *, master: str = MASTER,
             secret: str | None = None) -> ConsoleSessions:
    auth = Authenticator(master_key=master, lookup=store.lookup, cache=KeyCache(ttl=60),
                         now=lambda: NOW)
    return ConsoleSessions(authenticator=auth, master_key=master, secret_key=secret, ttl=TTL,
                           clock=clock)


_CODEC = URLSafeSerializer("any key: only the payload's encoding is used")


def payload(cookie: str) -> dict[str, Any]:
    """The signed (not encrypted) JSON inside a cookie, as anyone holding it can read it."""
    data: dict[str, Any] = _CODEC.load_payload(cookie.rsplit(".", 1)[0].encode())
    return data


def with_payload(cookie: str, **changes: Any) -> str:
    """The cookie with its payload changed and its signature kept."""
    body = _CODEC.dump_payload({**payload(cookie), **changes}).decode()
    return f"{body}.{cookie.rsplit('.', 1)[1]}"


def test_a_client_key_session_refers_to_the_key_by_its_hash_never_the_key() -> None:
    store, clock = FakeStore(), Clock()
    key = store.add(record(id="key_a", role="admin"))
    console = sessions(store, clock)
    principal = console._authenticator.authenticate(f"Bearer {key}")
    cookie, session = console.issue(principal, key)
    assert key not in cookie
    assert payload(cookie)["r"] == hash_key(key) and payload(cookie)["k"] == "key_a"
    assert session.expires_at == int(clock.t) + TTL
    assert console.principal(console.read(cookie)).key_id == "key_a"


def test_the_master_key_is_never_in_the_cookie_not_even_hashed() -> None:
    store, clock = FakeStore(), Clock()
    console = sessions(store, clock)
    cookie, _ = console.issue(MASTER_PRINCIPAL, MASTER)
    ref = str(payload(cookie)["r"])
    assert MASTER not in cookie and ref != hash_key(MASTER)  # an HMAC under the signing key
    assert console.principal(console.read(cookie)) == MASTER_PRINCIPAL


def test_sessions_expire() -> None:
    store, clock = FakeStore(), Clock()
    console = sessions(store, clock)
    cookie, _ = console.issue(MASTER_PRINCIPAL, MASTER)
    clock.t += TTL - 1
    console.read(cookie)
    clock.t += 1
    with pytest.raises(AuthenticationError) as err:
        console.read(cookie)
    assert err.value.code == "session_expired"


@pytest.mark.parametrize("tamper", [
    lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # the signature
    lambda c: with_payload(c, e=4_000_000_000),  # a longer life, the same signature
    lambda c: with_payload(c, k="key_other"),
    lambda c: "x" * 5000,
    lambda c: "",
])
def test_altered_cookies_are_refused(tamper: object) -> None:
    store, clock = FakeStore(), Clock()
    console = sessions(store, clock)
    cookie, _ = console.issue(MASTER_PRINCIPAL, MASTER)
    with pytest.raises(AuthenticationError) as err:
        console.read(tamper(cookie))  # type: ignore[operator]
    assert err.value.code == "invalid_session"


def test_every_check_re_resolves_the_key() -> None:
    store, clock = FakeStore(), Clock()
    key = store.add(record(id="key_a", role="admin"))
    console = sessions(store, clock)
    cookie, _ = console.issue(console._authenticator.authenticate(f"Bearer {key}"), key)
    digest = hash_key(key)
    store.records[digest] = record(id="key_a", role="admin", revoked=True)
    console._authenticator.cache.clear()  # what a sync after the revocation does
    with pytest.raises(AuthenticationError) as err:
        console.authenticate(cookie, method="GET", csrf_token=None)
    assert err.value.code == "api_key_revoked"
    del store.records[digest]  # rotated: the old hash is gone
    console._authenticator.cache.clear()
    with pytest.raises(AuthenticationError) as err:
        console.authenticate(cookie, method="GET", csrf_token=None)
    assert err.value.code == "invalid_session"  # not "invalid_api_key": it is not a guess


def test_changes_need_the_sessions_csrf_token() -> None:
    store, clock = FakeStore(), Clock()
    console = sessions(store, clock)
    cookie, session = console.issue(MASTER_PRINCIPAL, MASTER)
    assert console.authenticate(cookie, method="GET", csrf_token=None) == MASTER_PRINCIPAL
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        for token in (None, "", "wrong", session.csrf_token + "x", "é"):
            with pytest.raises(PermissionDeniedError) as err:
                console.authenticate(cookie, method=method, csrf_token=token)
            assert err.value.code == "csrf_token_invalid" and err.value.status == 403
        assert console.authenticate(cookie, method=method,
                                    csrf_token=session.csrf_token) == MASTER_PRINCIPAL


def test_processes_sharing_the_master_key_or_secret_accept_each_others_sessions() -> None:
    store, clock = FakeStore(), Clock()
    cookie, _ = sessions(store, clock).issue(MASTER_PRINCIPAL, MASTER)
    assert sessions(store, clock).read(cookie)  # another worker, another instance
    secret = "s" * 40
    shared, _ = sessions(store, clock, secret=secret).issue(MASTER_PRINCIPAL, MASTER)
    assert sessions(store, clock, secret=secret).read(shared)
    with pytest.raises(AuthenticationError):
        sessions(store, clock).read(shared)  # not signed with the derived key
    other = "sk-another-master-key"
    with pytest.raises(AuthenticationError):
        sessions(store, clock, master=other).read(cookie)  # derived from another master key
    with pytest.raises(AuthenticationError) as err:  # same secret, the master key changed
        console = sessions(store, clock, master=other, secret=secret)
        console.principal(console.read(shared))
    assert err.value.code == "invalid_session"
