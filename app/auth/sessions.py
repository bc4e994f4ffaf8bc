"""Operator console sessions: a signed cookie that stands for the admin key signed in with.

Signing in (``POST /ui/session``) authenticates the key like any API call. The cookie then
carries a reference to that key, never the key, and every request re-resolves it, so the
session ends with the key:

- a client key is referred to by its SHA-256, the value the database indexes it by (the key
  has 256 random bits: its hash gives nothing away). It is re-resolved through the
  Authenticator's key cache, so a key revoked, disabled, expired, demoted to ``member`` or
  rotated ends its sessions within the same bound as its bearer requests
  (``NEUROROUTE_SYNC_INTERVAL``).
- the master key is referred to by an HMAC of it under the signing key (a plain hash of a
  possibly short master key could be guessed offline from a cookie); another master key ends
  those sessions.

The cookie also carries a random CSRF token, which the session endpoints hand to the
console's script and which every change must send back in ``X-CSRF-Token``, and its expiry.
It is signed with itsdangerous (HMAC-SHA256) and holds no server-side state, so every worker
and instance accepts it as long as they share the signing key: ``NEUROROUTE_SECRET_KEY``, or
when unset a key derived from the master key with PBKDF2. The derivation is slow on purpose:
a cookie is a known plaintext against which master-key guesses could be tried offline. A
random per-process key would sign everyone out on every other worker and at every restart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from app.auth.keys import hash_key
from app.auth.service import MASTER_PRINCIPAL, Authenticator, Principal
from app.errors import AuthenticationError, PermissionDeniedError

# Over plain HTTP (development on loopback) the cookie cannot be Secure; over TLS it is, with
# the __Host- prefix: the browser then refuses it from any other host or path, or without TLS.
SESSION_COOKIE = "neuroroute_session"
SECURE_SESSION_COOKIE = "__Host-neuroroute_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# PBKDF2-HMAC-SHA256 rounds for the master-key-derived signing key: ~50 ms, once per process.
PBKDF2_ITERATIONS = 200_000
_SALT = b"neuroroute.console-session"
_MAX_COOKIE = 4096  # what browsers store; anything longer was not made here


def cookie_name(secure: bool) -> str:
    """The session cookie's name for a request over TLS (``secure``) or plain HTTP."""
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """What a session cookie says: whose it is, the CSRF token, when it ends (epoch s)."""

    key_id: str
    ref: str  # the client key's SHA-256, or the master key's HMAC
    csrf_token: str
    expires_at: int


def _invalid() -> AuthenticationError:
    return AuthenticationError("This console session is not valid (signed with another key, "
                               "or altered); sign in again.", code="invalid_session")


class ConsoleSessions:
    """Issue and check console session cookies; principals come from ``authenticator``."""

    def __init__(self, *, authenticator: Authenticator, master_key: str,
                 secret_key: str | None = None, ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._authenticator = authenticator
        self._master = master_key.encode("utf-8")
        self._secret = secret_key.encode("utf-8") if secret_key is not None else None
        self.ttl = ttl
        self._clock = clock
        self._signing: tuple[URLSafeSerializer, str] | None = None  # made on first use

    def _keys(self) -> tuple[URLSafeSerializer, str]:
        """The serializer and the master key's reference, derived once (lazily: PBKDF2 costs
        ~50 ms, which processes that never see a console request need not spend)."""
        if self._signing is None:
            secret = self._secret or hashlib.pbkdf2_hmac("sha256", self._master, _SALT,
                                                         PBKDF2_ITERATIONS)
            serializer = URLSafeSerializer(secret, salt=_SALT,
                                           signer_kwargs={"digest_method": hashlib.sha256})
            master_ref = hmac.new(secret, b"master-key\0" + self._master,
                                  hashlib.sha256).hexdigest()
            self._signing = (serializer, master_ref)
        return self._signing

    def issue(self, principal: Principal, key: str) -> tuple[str, ConsoleSession]:
        """A new session for ``principal``, authenticated with ``key``: (cookie, session)."""
        serializer, master_ref = self._keys()
        ref = master_ref if principal == MASTER_PRINCIPAL else hash_key(key)
        session = ConsoleSession(key_id=principal.key_id, ref=ref,
                                 csrf_token=secrets.token_urlsafe(32),
                                 expires_at=int(self._clock()) + self.ttl)
        cookie = serializer.dumps({"k": session.key_id, "r": session.ref,
                                   "c": session.csrf_token, "e": session.expires_at})
        return cookie, session

    def read(self, cookie: str) -> ConsoleSession:
        """The session a cookie holds. Raises AuthenticationError (401): ``invalid_session``
        for a cookie not signed here (or altered), ``session_expired`` past its expiry."""
        if len(cookie) > _MAX_COOKIE:
            raise _invalid()
        serializer, _ = self._keys()
        try:
            data: Any = serializer.loads(cookie)
        except BadSignature:
            raise _invalid() from None
        if not isinstance(data, dict) or not all(
                isinstance(data.get(f), str) for f in ("k", "r", "c")) or \
                type(data.get("e")) is not int:
            raise _invalid()
        if data["e"] <= self._clock():
            raise AuthenticationError("This console session has expired; sign in again.",
                                      code="session_expired")
        return ConsoleSession(key_id=data["k"], ref=data["r"], csrf_token=data["c"],
                              expires_at=data["e"])

    def principal(self, session: ConsoleSession) -> Principal:
        """Who the session's key is now. Raises AuthenticationError (401) when the key was
        revoked, disabled, has expired or no longer exists (rotated), and
        ServiceUnavailableError (503) when it cannot be checked (database down, not cached).
        """
        _, master_ref = self._keys()
        if session.key_id == MASTER_PRINCIPAL.key_id:
            if hmac.compare_digest(session.ref, master_ref):
                return MASTER_PRINCIPAL
            raise _invalid()  # the master key changed
        try:
            principal = self._authenticator.authenticate_digest(session.ref)
        except AuthenticationError as err:
            if err.code != "invalid_api_key":
                raise  # revoked, disabled, expired: the key's own reason
            # Not a guess (it is signed): the key was rotated or never existed.
            raise AuthenticationError("The key this console session was signed in with no "
                                      "longer exists (rotated?); sign in again.",
                                      code="invalid_session") from None
        if principal.key_id != session.key_id:
            raise _invalid()
        return principal

    @staticmethod
    def check_csrf(session: ConsoleSession, token: str | None) -> None:
        """Raises PermissionDeniedError (403) unless ``token`` is the session's CSRF token."""
        if token is None or not hmac.compare_digest(token.encode("utf-8"),
                                                    session.csrf_token.encode("utf-8")):
            raise PermissionDeniedError(
                f"A change made with a console session needs the session's CSRF token in the "
                f"{CSRF_HEADER} header.", code="csrf_token_invalid")

    def authenticate(self, cookie: str, *, method: str, csrf_token: str | None) -> Principal:
        """The principal of a request carrying a session cookie: for anything but GET, HEAD
        and OPTIONS the CSRF token must match first."""
        session = self.read(cookie)
        if method not in SAFE_METHODS:
            self.check_csrf(session, csrf_token)
        return self.principal(session)
