"""Resolve the ``Authorization: Bearer`` header to a :class:`Principal`.

The master key (``NEUROROUTE_MASTER_KEY``) is the bootstrap admin; it is compared in constant
time. The key itself is never logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from app.errors import AuthenticationError, PermissionDeniedError


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str  # a loggable identifier, never the key
    role: str  # "admin" | "member"
    allowed_models: frozenset[str] | None = None  # None: every model
    team_id: str | None = None
    rpm_limit: int | None = None  # None: the default from settings
    tpm_limit: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


MASTER_PRINCIPAL = Principal(key_id="master", role="admin")


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


class Authenticator:
    def __init__(self, *, master_key: str) -> None:
        self._master = master_key.encode("utf-8")

    def authenticate(self, authorization: str | None) -> Principal:
        """Return the caller's principal; raises AuthenticationError (401) for a bad key."""
        token = bearer_token(authorization).encode("utf-8")
        if hmac.compare_digest(token, self._master):
            return MASTER_PRINCIPAL
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")


def require_admin(principal: Principal) -> None:
    """Raises PermissionDeniedError (403) unless the principal has the admin role."""
    if not principal.is_admin:
        raise PermissionDeniedError("This endpoint needs an admin key.",
                                    code="insufficient_permissions")
