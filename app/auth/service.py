"""Resolve the ``Authorization: Bearer`` header to a :class:`Principal`.

The master key (``NEUROROUTE_MASTER_KEY``) is the bootstrap admin; it is compared in constant
time. Client keys (``sk-nr-…``) are looked up by their SHA-256 through an in-process cache, so
a known key costs no database round trip. The key itself is never logged or echoed.

Timing: the cache and the database are indexed by the key's SHA-256, not by the key. Timing
differences can at most reveal something about a hash, which does not help to forge a key.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from app.auth.keys import (
    KeyCache,
    KeyLookup,
    KeyRecord,
    LastUsedTracker,
    hash_key,
    looks_like_client_key,
)
from app.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, role, model allowlist, owner and limits."""

    key_id: str  # a loggable identifier, never the key
    role: str  # "admin" | "member"
    allowed_models: frozenset[str] | None = None  # None: every model
    user_id: str | None = None
    team_id: str | None = None
    # Per-key limits, carried for the rate-limit and budget features (None: no limit).
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_budget: float | None = None
    budget_period: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the principal may call ``/admin/*``."""
        return self.role == "admin"

    def may_use(self, model: str) -> bool:
        """Whether the principal's allowlist (if any) contains ``model``."""
        return self.allowed_models is None or model in self.allowed_models


MASTER_PRINCIPAL = Principal(key_id="master", role="admin")


def principal_for(record: KeyRecord) -> Principal:
    """The principal of a (usable) client key."""
    return Principal(key_id=record.id, role=record.role, allowed_models=record.allowed_models,
                     user_id=record.user_id, team_id=record.team_id,
                     rpm_limit=record.rpm_limit, tpm_limit=record.tpm_limit,
                     max_budget=record.max_budget, budget_period=record.budget_period)


def bearer_token(authorization: str | None) -> str:
    """Extract the key from an ``Authorization`` header; raises AuthenticationError (401)."""
    if not authorization:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Malformed Authorization header; expected 'Bearer <key>'.",
                                  code="invalid_api_key")
    return token


def check_usable(record: KeyRecord, now: datetime) -> None:
    """Raises AuthenticationError (401) saying why a revoked, disabled or expired key fails."""
    if record.revoked:
        raise AuthenticationError("This API key has been revoked.", code="api_key_revoked")
    if record.disabled:
        raise AuthenticationError("This API key is disabled.", code="api_key_disabled")
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthenticationError("This API key has expired.", code="api_key_expired")


class Authenticator:
    """Master key plus client keys (when a ``lookup`` into the key store is given)."""

    def __init__(self, *, master_key: str, lookup: KeyLookup | None = None,
                 cache: KeyCache | None = None, last_used: LastUsedTracker | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._master = master_key.encode("utf-8")
        self._lookup = lookup
        # "is None", not "or": an empty cache or tracker is falsy (they define __len__).
        self.cache = KeyCache(ttl=60.0) if cache is None else cache
        self.last_used = LastUsedTracker() if last_used is None else last_used
        self._now = now

    def authenticate(self, authorization: str | None) -> Principal:
        """Return the caller's principal.

        Raises AuthenticationError (401) for an unknown, revoked, disabled or expired key and
        ServiceUnavailableError (503) when a key not in the cache cannot be checked because
        the database is down.
        """
        token = bearer_token(authorization)
        if hmac.compare_digest(token.encode("utf-8"), self._master):
            return MASTER_PRINCIPAL
        if not looks_like_client_key(token):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        return self.authenticate_digest(hash_key(token))

    def authenticate_digest(self, digest: str) -> Principal:
        """The principal of the client key whose SHA-256 is ``digest`` (what a console
        session refers to its key by), checked exactly like the key itself.

        Raises AuthenticationError and ServiceUnavailableError as :meth:`authenticate` does.
        """
        if self._lookup is None:
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        record = self._find(digest)
        if record is None:
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        now = self._now()
        check_usable(record, now)
        self.last_used.touch(record.id, now)
        return principal_for(record)

    def _find(self, digest: str) -> KeyRecord | None:
        assert self._lookup is not None
        cached = self.cache.get(digest)
        if cached is not None and cached[1]:
            return cached[0]
        generation = self.cache.generation
        try:
            record = self._lookup(digest)
        except SQLAlchemyError as exc:
            if cached is not None:
                # Fail open for keys this worker already knew: the database being down must
                # not take the gateway down (DESIGN: "keys from cache keep working"). Re-arm
                # the entry so this key tries the database once per TTL, not per request.
                log.warning("key store unavailable, serving a cached key",
                            extra={"error": type(exc).__name__})
                self.cache.put(digest, cached[0], generation)
                return cached[0]
            log.warning("key store unavailable", extra={"error": type(exc).__name__})
            raise ServiceUnavailableError(
                "The API key could not be checked: the key store is unavailable. "
                "Retry shortly.", code="key_store_unavailable") from None
        self.cache.put(digest, record, generation)
        return record


def require_admin(principal: Principal) -> None:
    """Raises PermissionDeniedError (403) unless the principal has the admin role."""
    if not principal.is_admin:
        raise PermissionDeniedError("This endpoint needs an admin key.",
                                    code="insufficient_permissions")
