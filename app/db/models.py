"""The gateway's tables as typed SQLAlchemy 2 models.

Identifiers are short strings with a type prefix (``key_…``, ``usr_…``) whose first part is the
creation time in hex, so ordering by id is ordering by creation: list endpoints paginate with a
plain ``id > after`` cursor.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ROLES = ("admin", "member")
BUDGET_PERIODS = ("daily", "weekly", "monthly", "total")


def new_id(prefix: str) -> str:
    """A creation-ordered random id, e.g. ``key_0193f6a1b2c3d4e5f6a7b8``."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC datetimes")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Read back as aware UTC (SQLite returns naive values)."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table (its metadata is what Alembic compares)."""


class Team(Base):
    """An optional group of users and keys."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True,
                                    default=lambda: new_id("team"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    max_budget: Mapped[float | None] = mapped_column(Float)  # USD per budget_period
    budget_period: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class User(Base):
    """A person who owns keys. The role is informational: keys carry their own role."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="member")
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), index=True)
    max_budget: Mapped[float | None] = mapped_column(Float)  # USD per budget_period
    budget_period: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A client key. Only the SHA-256 of the key is stored; ``prefix`` is its visible start."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16), default="member")
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), index=True)
    # None: every model; a list: only these client-facing model names.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    # Limits enforced by later features (rate limits, budgets); stored with the key now.
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    max_budget: Mapped[float | None] = mapped_column(Float)
    budget_period: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked (for good)."""
        return self.revoked_at is not None

    @property
    def status(self) -> str:
        """active | revoked | disabled | expired (the same rules as authentication)."""
        if self.revoked:
            return "revoked"
        if self.disabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class DeploymentRow(Base):
    """A deployment managed through the admin API (same fields as a YAML ``models:`` entry).

    ``api_key`` and ``headers`` are upstream secrets: the gateway needs them in clear to call
    the upstream, and the admin API accepts them but never returns them.
    """

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    api_base: Mapped[str | None] = mapped_column(String(2048))
    api_key: Mapped[str | None] = mapped_column(String(4096))
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    connect_timeout: Mapped[float | None] = mapped_column(Float)
    read_timeout: Mapped[float | None] = mapped_column(Float)
    mock: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Every other field of a models: entry (provider, cache, routing options...), validated
    # by the same schema as the YAML file; secrets in it (auth.client_secret) are write-only.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """One admin change: who, what, and the entity before/after (secrets never included)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)  # the acting key's id
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(256))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SyncVersion(Base):
    """A counter per kind of shared state ("keys", "deployments").

    Every admin change bumps its counter in the same transaction; each worker polls the
    counters (one cheap query every few seconds) and drops its caches when one moved. This is
    what makes a revocation reach every worker of every instance without a message bus.
    """

    __tablename__ = "sync_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class UsageRow(Base):
    """One chat completion request: tokens, cost and outcome (written in batches)."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_key_created", "key_id", "created_at"),
                      Index("ix_usage_team_created", "team_id", "created_at"),
                      Index("ix_usage_user_created", "user_id", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    key_id: Mapped[str | None] = mapped_column(String(40))
    user_id: Mapped[str | None] = mapped_column(String(40))
    team_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(256), index=True)
    deployment: Mapped[str | None] = mapped_column(String(256))
    provider: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[float] = mapped_column(Float, default=0.0)  # USD
    price_known: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int | None] = mapped_column(Integer)
    route: Mapped[str | None] = mapped_column(String(512))
    # Which API surface the client called: chat.completions, messages, responses, ...
    api: Mapped[str] = mapped_column(String(32), default="chat.completions",
                                     server_default="chat.completions")


class ResponseRow(Base):
    """A stored Responses API answer (``store: true``): what the client sent (its own input
    items, not the conversation before them) and the response object it received, owned by
    the key that created it and visible to that key's team."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # resp_…, also upstream's
    key_id: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str | None] = mapped_column(String(40))
    # The response this one continues (no foreign key: an earlier response may be deleted
    # or purged, and continuing after it then says so).
    previous_response_id: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When it, or a response continuing its conversation, was last stored: retention counts
    # from here, so a conversation in use is kept whole.
    active_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # {"id", "previous_response_id", "input": [items], "response": {...}}
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
