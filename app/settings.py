"""One typed Settings object built from ``NEUROROUTE_*`` environment variables and one YAML file.

This is the only module that reads the environment. ``load_settings()`` is called once by
``create_app()`` (and by the Gunicorn master to fail fast on a bad configuration); everything
else receives the resulting :class:`Settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.providers.kinds import DEFAULT_API_BASES, DEFAULT_ENDPOINTS
from app.schemas.config import ConfigFileSchema

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "neuroroute.yaml"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_DATA_DIR / 'neuroroute.db'}"
ENV_REF_PREFIX = "os.environ/"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
MIB = 1024 * 1024


class ConfigError(Exception):
    """The configuration is invalid; the message names the source, the field and the problem."""


@dataclass(frozen=True, slots=True)
class MockParams:
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens: int = 16
    interval_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Response caching for a model: entries live ``ttl`` seconds (0 = the global default)
    and are shared within ``scope``: key, team (falls back to key) or global."""

    ttl: int = 0
    scope: str = "team"


@dataclass(frozen=True, slots=True)
class OAuth2Config:
    """OAuth2 client-credentials grant for an upstream (e.g. SAP AI Core): where and who."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    client_secret_source: str = "literal"  # "os.environ/NAME" or "literal"
    scope: str | None = None
    audience: str | None = None
    client_auth: str = "basic"  # "basic" (HTTP Basic) or "body" (form fields)

    def public_dict(self) -> dict[str, Any]:
        return {
            "type": "oauth2_client_credentials",
            "token_url": self.token_url,
            "client_id": self.client_id,
            "client_secret": f"<redacted: {self.client_secret_source}>",
            "scope": self.scope,
            "audience": self.audience,
            "client_auth": self.client_auth,
        }


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream model that can serve requests for the client-facing ``name``."""

    id: str
    name: str
    provider: str
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_source: str | None = None  # "os.environ/NAME" or "literal": shown instead of the key
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    weight: float = 1.0
    connect_timeout: float | None = None
    read_timeout: float | None = None
    mock: MockParams | None = None
    cache: CachePolicy | None = None
    stream_usage: bool = True  # ask OpenAI-compatible upstreams for usage on every stream
    auth: OAuth2Config | None = None
    api_version: str | None = None  # azure
    anthropic_version: str | None = None  # anthropic; the provider has a default
    default_max_tokens: int | None = None  # anthropic; the provider has a default
    # Routing: capacity (requests/tokens per minute), prices, context size and abilities.
    rpm: int | None = None
    tpm: int | None = None
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    cached_input_cost_per_mtok: float | None = None
    max_input_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    tier: str | None = None
    # The client APIs' families it serves: chat (chat completions, and Messages and Responses
    # through them), embeddings, completions (legacy text completions).
    endpoints: frozenset[str] = frozenset({"chat"})
    responses_api: bool = False  # openai/azure: the upstream speaks the Responses API itself

    def public_dict(self) -> dict[str, Any]:
        """The deployment without secrets (for the admin API and logs)."""
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "api_base": self.api_base,
            "api_key": None if self.api_key is None else f"<redacted: {self.api_key_source}>",
            "headers": {k: "<redacted>" for k in self.headers},
            "weight": self.weight,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "mock": None if self.mock is None else {
                "latency_ms": self.mock.latency_ms, "ttft_ms": self.mock.ttft_ms,
                "tokens": self.mock.tokens, "interval_ms": self.mock.interval_ms},
            "cache": None if self.cache is None else {"ttl": self.cache.ttl,
                                                      "scope": self.cache.scope},
            "auth": None if self.auth is None else self.auth.public_dict(),
            "api_version": self.api_version,
            "anthropic_version": self.anthropic_version,
            "default_max_tokens": self.default_max_tokens,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "input_cost_per_mtok": self.input_cost_per_mtok,
            "output_cost_per_mtok": self.output_cost_per_mtok,
            "cached_input_cost_per_mtok": self.cached_input_cost_per_mtok,
            "max_input_tokens": self.max_input_tokens,
            "capabilities": sorted(self.capabilities),
            "tier": self.tier,
            "endpoints": sorted(self.endpoints),
            "responses_api": self.responses_api,
        }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried before its first byte is sent."""

    retries: int = 2  # extra attempts per model group (fallback groups get their own)
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 2.0
    retry_after_max_s: float = 5.0  # a longer Retry-After is not waited for
    deadline_s: float = 120.0  # no new attempt starts after this much time in the router


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """Circuit breaker: ``failures`` within ``window_s`` open it for ``cooldown_s``."""

    failures: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    """Per model group: balancing strategy, retries and fallback groups (None: the default)."""

    strategy: str | None = None
    retries: int | None = None
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AutoRule:
    """If every given condition holds, the request needs at least ``tier``."""

    tier: str
    min_tokens: int | None = None
    signals: Mapping[str, bool] = field(default_factory=dict)  # e.g. {"code": True}
    keywords: tuple[str, ...] = ()  # lower-case; any one present in the prompt matches


@dataclass(frozen=True, slots=True)
class AutoRouterConfig:
    """A virtual model name (e.g. ``auto``) that picks a deployment by classifying the prompt."""

    name: str
    tiers: tuple[str, ...] = ("small", "medium", "large")  # cheapest/least able first
    default_tier: str = "small"
    expected_output_tokens: int = 500  # for the price comparison before the answer exists
    rules: tuple[AutoRule, ...] | None = None  # None: the built-in rules of app.routing.auto


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The ``router_settings``, ``groups`` and ``auto_routers`` sections of the YAML file."""

    strategy: str = "weighted"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cooldown: CooldownPolicy = field(default_factory=CooldownPolicy)
    latency_ewma_alpha: float = 0.3
    groups: Mapping[str, GroupPolicy] = field(default_factory=dict)
    auto_routers: tuple[AutoRouterConfig, ...] = ()

    def group(self, name: str) -> GroupPolicy:
        """The policy of group ``name`` (defaults when the file does not mention it)."""
        return self.groups.get(name) or GroupPolicy()

    def auto_router(self, name: str) -> AutoRouterConfig | None:
        """The auto router called ``name``, if one is configured."""
        return next((r for r in self.auto_routers if r.name == name), None)

    def public_dict(self) -> dict[str, Any]:
        """The routing configuration for /admin/config (it holds no secrets)."""
        return {
            "strategy": self.strategy,
            "retry": asdict(self.retry),
            "cooldown": asdict(self.cooldown),
            "latency_ewma_alpha": self.latency_ewma_alpha,
            "groups": {name: asdict(policy) for name, policy in self.groups.items()},
            "auto_routers": [r.name for r in self.auto_routers],
        }


@dataclass(frozen=True, slots=True)
class Settings:
    master_key: str = field(repr=False)
    config_path: Path
    deployments: tuple[Deployment, ...]
    max_body_bytes: int = 16 * MIB
    upstream_connect_timeout: float = 5.0
    upstream_read_timeout: float = 600.0
    upstream_pool_maxsize: int = 2048
    upstream_trust_env: bool = False
    log_level: str = "INFO"
    access_log: bool = True
    metrics_token: str | None = field(default=None, repr=False)
    metrics_multiproc_dir: str | None = None  # set by gunicorn.conf.py for multi-worker metrics
    trusted_proxy_hops: int = 0
    redis_namespace: str = "neuroroute"  # prefix of every key the gateway writes to Redis
    ratelimit_strategy: str = "fixed-window"
    default_rpm: int | None = None
    default_tpm: int | None = None
    auth_failure_limit: str = "20/minute"
    cache_ttl: int = 300
    # Usage records are written to the database in batches by a background writer.
    usage_enabled: bool = True
    usage_queue_max: int = 100_000  # records held while the database is down; then dropped
    usage_batch_size: int = 500
    usage_flush_interval: float = 1.0
    # Budgets: share of max_budget at which a warning is logged; without Redis, how long a
    # worker trusts its view of the spend in the database (the overshoot bound, see README).
    soft_budget_ratio: float = 0.8
    budget_refresh_interval: float = 2.0
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: float = 5.0
    # How often (seconds) each worker checks the shared database for changed keys and
    # deployments: the upper bound for a revoked key or a new deployment to reach every worker.
    sync_interval: float = 2.0
    # Optional: with Redis, admin changes are also announced on a pub/sub channel so every
    # worker re-syncs at once; polling (sync_interval) stays the guarantee if Redis is down.
    redis_url: str | None = field(default=None, repr=False)
    # Backstop lifetime of a cached key lookup (the sync check normally clears it sooner).
    key_cache_ttl: float = 60.0
    # How often (seconds) a worker writes the keys' "last used" times (batched, not per request).
    last_used_flush_interval: float = 30.0
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    # Browser origins allowed to call the API (CORS); empty: no cross-origin access.
    cors_origins: tuple[str, ...] = ()
    # Days a stored Responses API answer is kept after its conversation was last continued
    # (0: for ever); older ones are purged.
    responses_retention_days: int = 30
    # Operator console (/ui): the key that signs session cookies (None: derived from the
    # master key, see app.auth.sessions) and how long a session lasts.
    secret_key: str | None = field(default=None, repr=False)
    console_session_ttl: int = 8 * 3600

    def public_dict(self) -> dict[str, Any]:
        """The effective configuration with every secret redacted."""
        return {
            "master_key": "<redacted>",
            "config_path": str(self.config_path),
            "max_body_bytes": self.max_body_bytes,
            "upstream_connect_timeout": self.upstream_connect_timeout,
            "upstream_read_timeout": self.upstream_read_timeout,
            "upstream_pool_maxsize": self.upstream_pool_maxsize,
            "upstream_trust_env": self.upstream_trust_env,
            "log_level": self.log_level,
            "access_log": self.access_log,
            "metrics_token": None if self.metrics_token is None else "<redacted>",
            "trusted_proxy_hops": self.trusted_proxy_hops,
            "redis_namespace": self.redis_namespace,
            "ratelimit_strategy": self.ratelimit_strategy,
            "default_rpm": self.default_rpm,
            "default_tpm": self.default_tpm,
            "auth_failure_limit": self.auth_failure_limit,
            "cache_ttl": self.cache_ttl,
            "usage_enabled": self.usage_enabled,
            "usage_queue_max": self.usage_queue_max,
            "usage_batch_size": self.usage_batch_size,
            "usage_flush_interval": self.usage_flush_interval,
            "soft_budget_ratio": self.soft_budget_ratio,
            "budget_refresh_interval": self.budget_refresh_interval,
            "database_url": redact_url(self.database_url),
            "db_pool_size": self.db_pool_size,
            "db_max_overflow": self.db_max_overflow,
            "db_pool_timeout": self.db_pool_timeout,
            "sync_interval": self.sync_interval,
            "redis_url": None if self.redis_url is None else redact_url(self.redis_url),
            "key_cache_ttl": self.key_cache_ttl,
            "last_used_flush_interval": self.last_used_flush_interval,
            "models": [d.public_dict() for d in self.deployments],
            "routing": self.routing.public_dict(),
            "cors_origins": list(self.cors_origins),
            "responses_retention_days": self.responses_retention_days,
            "secret_key": None if self.secret_key is None else "<redacted>",
            "console_session_ttl": self.console_session_ttl,
        }


def redact_url(url: str | None) -> str | None:
    """A database or Redis URL with its password replaced, for logs and the admin API."""
    if url is None:
        return None
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # reported as such, never echoed: it may contain a password
        return "<unparsable URL>"


def _database_url(env: Mapping[str, str]) -> str:
    url = env.get("NEUROROUTE_DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("NEUROROUTE_DATABASE_URL: not a valid database URL "
                          "(e.g. sqlite:///data/neuroroute.db or "
                          "postgresql+psycopg2://user:password@host/db)") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError("NEUROROUTE_DATABASE_URL: only sqlite and postgresql are supported, "
                          f"got {parsed.get_backend_name()!r}")
    return url


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = env.get("NEUROROUTE_REDIS_URL") or None
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("NEUROROUTE_REDIS_URL: expected redis://host:port/db, rediss://... "
                          "or unix://...")
    return url


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """``NEUROROUTE_CORS_ORIGINS``: comma-separated ``scheme://host[:port]``, or ``*``."""
    origins = tuple(o.strip().rstrip("/") for o in
                    (env.get("NEUROROUTE_CORS_ORIGINS") or "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"NEUROROUTE_CORS_ORIGINS: {origin!r} is not an origin like "
                              "https://app.example.com or http://localhost:3000 (or *)")
    return origins


def _secret_key(env: Mapping[str, str]) -> str | None:
    """``NEUROROUTE_SECRET_KEY``: unset, or long enough not to be guessed."""
    value = env.get("NEUROROUTE_SECRET_KEY") or None
    if value is not None and len(value) < 32:
        raise ConfigError("NEUROROUTE_SECRET_KEY: must be at least 32 characters (e.g. "
                          "python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return value


def _flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """Turn marshmallow's nested error dict into ``models[0].provider: problem`` lines."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "(file)"
            elif key == "value" and prefix.startswith("groups."):
                path = prefix  # marshmallow nests a Dict's value errors under "value"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten_errors(value, path))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {' '.join(messages)}"]
    return [f"{prefix}: {messages}"]


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type, *,
                allow_zero: bool = False) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    if allow_zero and value == 0:
        return value
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than {'or equal to ' if allow_zero else ''}"
                          f"0, got {raw!r}")
    return value


def _env_optional_count(env: Mapping[str, str], name: str) -> int | None:
    """A positive whole number, or None when unset (no limit)."""
    if not env.get(name):
        return None
    value: int = _env_number(env, name, 0, int)
    return value


def _check_limit_string(name: str, value: str) -> None:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name}: not a rate limit like '20/minute': {value!r}") from None


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _resolve_secret(value: str | None, where: str, env: Mapping[str, str]) -> tuple[str | None,
                                                                                     str | None]:
    if value is None:
        return None, None
    if value.startswith(ENV_REF_PREFIX):
        var = value[len(ENV_REF_PREFIX):]
        secret = env.get(var)
        if not secret:
            raise ConfigError(f"{where}: environment variable {var} is not set")
        return secret, value
    return value, "literal"


# Fields that only mean something to one provider kind: elsewhere they are typos or mistakes.
_KIND_ONLY_FIELDS = {"api_version": "azure", "anthropic_version": "anthropic",
                     "default_max_tokens": "anthropic"}


def _check_provider_fields(entry: Mapping[str, Any], where: str) -> None:
    """Cross-field rules the schema cannot express; raise ConfigError naming the field."""
    provider = entry["provider"]
    if provider == "mock":
        for name in ("api_base", "auth"):
            if entry.get(name):
                raise ConfigError(f"{where}.{name}: the mock provider has no upstream")
    elif not entry.get("api_base") and provider not in DEFAULT_API_BASES:
        raise ConfigError(f"{where}.api_base: required for provider {provider!r}")
    for name, kind in _KIND_ONLY_FIELDS.items():
        if name in entry and provider != kind:
            raise ConfigError(f"{where}.{name}: only used by provider {kind!r}")
    if provider == "azure" and "api_version" not in entry:
        raise ConfigError(f"{where}.api_version: required for provider 'azure' "
                          f"(e.g. 2024-10-21)")
    if entry.get("api_key") and entry.get("auth"):
        raise ConfigError(f"{where}.auth: give either api_key or auth, not both")
    if provider == "anthropic" and set(entry.get("endpoints") or ()) - {"chat"}:
        raise ConfigError(f"{where}.endpoints: provider 'anthropic' serves chat only")
    if entry.get("responses_api") and provider in ("mock", "anthropic"):
        raise ConfigError(f"{where}.responses_api: only for OpenAI-compatible providers")


def _oauth2_config(raw: Mapping[str, Any] | None, where: str,
                   env: Mapping[str, str]) -> OAuth2Config | None:
    if raw is None:
        return None
    # Both are required by the schema, so _resolve_secret returns strings for them.
    client_id, _ = _resolve_secret(raw["client_id"], f"{where}.client_id", env)
    secret, secret_source = _resolve_secret(raw["client_secret"], f"{where}.client_secret", env)
    return OAuth2Config(token_url=raw["token_url"], client_id=str(client_id),
                        client_secret=str(secret), client_secret_source=str(secret_source),
                        scope=raw.get("scope"), audience=raw.get("audience"),
                        client_auth=raw["client_auth"])


def build_deployment(entry: Mapping[str, Any], *, dep_id: str, where: str,
                     env: Mapping[str, str], key_source: str | None = None) -> Deployment:
    """A Deployment from one validated ``models:`` entry: the YAML file's and the database's
    deployments are built here alike. Raises ConfigError naming ``where`` and the field."""
    _check_provider_fields(entry, where)
    api_key, source = _resolve_secret(entry.get("api_key"), f"{where}.api_key", env)
    api_base = entry.get("api_base") or DEFAULT_API_BASES.get(entry["provider"])
    mock = entry.get("mock")
    return Deployment(
        id=dep_id,
        name=entry["name"],
        provider=entry["provider"],
        model=entry["model"],
        api_base=(api_base or "").rstrip("/") or None,
        api_key=api_key,
        api_key_source=key_source if api_key is not None and key_source else source,
        headers=dict(entry.get("headers") or {}),
        weight=entry.get("weight", 1.0),
        connect_timeout=entry.get("connect_timeout"),
        read_timeout=entry.get("read_timeout"),
        mock=MockParams(**mock) if mock is not None
        else (MockParams() if entry["provider"] == "mock" else None),
        cache=CachePolicy(**entry["cache"]) if entry.get("cache") is not None else None,
        stream_usage=entry.get("stream_usage", True),
        auth=_oauth2_config(entry.get("auth"), f"{where}.auth", env),
        api_version=entry.get("api_version"),
        anthropic_version=entry.get("anthropic_version"),
        default_max_tokens=entry.get("default_max_tokens"),
        rpm=entry.get("rpm"),
        tpm=entry.get("tpm"),
        input_cost_per_mtok=entry.get("input_cost_per_mtok"),
        output_cost_per_mtok=entry.get("output_cost_per_mtok"),
        cached_input_cost_per_mtok=entry.get("cached_input_cost_per_mtok"),
        max_input_tokens=entry.get("max_input_tokens"),
        capabilities=frozenset(entry.get("capabilities") or ()),
        tier=entry.get("tier"),
        endpoints=frozenset(entry.get("endpoints") or DEFAULT_ENDPOINTS.get(entry["provider"],
                                                                            ("chat",))),
        responses_api=entry.get("responses_api", False),
    )


def load_deployments(path: Path, env: Mapping[str, str]) -> tuple[Deployment, ...]:
    """Read and validate the YAML model file; raise ConfigError naming file, field and problem."""
    return load_config_file(path, env)[0]


def load_config_file(path: Path, env: Mapping[str, str]) -> tuple[tuple[Deployment, ...],
                                                                  RoutingConfig]:
    """The deployments and the routing configuration of the YAML file (validated)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the file must be a mapping with a 'models' list")
    try:
        data = ConfigFileSchema().load(raw)
    except ValidationError as exc:
        lines = _flatten_errors(exc.messages)
        raise ConfigError(f"{path}: " + "; ".join(lines)) from None

    deployments: list[Deployment] = []
    seen_ids: set[str] = set()
    group_sizes: dict[str, int] = {}
    for index, entry in enumerate(data["models"]):
        where = f"{path}: models[{index}]"
        position = group_sizes[entry["name"]] = group_sizes.get(entry["name"], -1) + 1
        dep_id = entry.get("id") or f"{entry['name']}#{position}"
        if dep_id in seen_ids:
            raise ConfigError(f"{where}.id: duplicate deployment id {dep_id!r}")
        seen_ids.add(dep_id)
        deployments.append(build_deployment(entry, dep_id=dep_id, where=where, env=env))
    return tuple(deployments), _routing_config(data, set(group_sizes), path)


def _routing_config(data: dict[str, Any], names: set[str], path: Path) -> RoutingConfig:
    """Build RoutingConfig; every group/fallback/router name must fit the ``models`` list."""
    rs = data["router_settings"]
    groups: dict[str, GroupPolicy] = {}
    for name, raw in data["groups"].items():
        if name not in names:
            raise ConfigError(f"{path}: groups.{name}: no model has this name")
        for key in ("fallbacks", "context_window_fallbacks"):
            for target in raw[key]:
                if target not in names or target == name:
                    raise ConfigError(f"{path}: groups.{name}.{key}: {target!r} is not "
                                      f"another model name")
        groups[name] = GroupPolicy(strategy=raw.get("strategy"), retries=raw.get("retries"),
                                   fallbacks=tuple(raw["fallbacks"]),
                                   context_window_fallbacks=tuple(
                                       raw["context_window_fallbacks"]))
    routers: list[AutoRouterConfig] = []
    for index, raw in enumerate(data["auto_routers"]):
        if raw["name"] in names or raw["name"] in {r.name for r in routers}:
            raise ConfigError(f"{path}: auto_routers[{index}].name: {raw['name']!r} is "
                              f"already a model name")
        rules = None if raw.get("rules") is None else tuple(
            AutoRule(tier=rule["tier"], min_tokens=rule["when"].get("min_tokens"),
                     signals={k: v for k, v in rule["when"].items()
                              if k not in ("min_tokens", "keywords")},
                     keywords=tuple(w.lower() for w in rule["when"].get("keywords", ())))
            for rule in raw["rules"])
        routers.append(AutoRouterConfig(
            name=raw["name"], tiers=tuple(raw["tiers"]),
            default_tier=raw.get("default_tier") or raw["tiers"][0],
            expected_output_tokens=raw["expected_output_tokens"], rules=rules))
    return RoutingConfig(
        strategy=rs["strategy"],
        retry=RetryPolicy(retries=rs["retries"], backoff_initial_s=rs["backoff_initial_s"],
                          backoff_max_s=rs["backoff_max_s"],
                          retry_after_max_s=rs["retry_after_max_s"],
                          deadline_s=rs["deadline_s"]),
        cooldown=CooldownPolicy(**rs["cooldown"]),
        latency_ewma_alpha=rs["latency_ewma_alpha"],
        groups=groups,
        auto_routers=tuple(routers),
    )


def load_database_url(env: Mapping[str, str] | None = None) -> str:
    """Only ``NEUROROUTE_DATABASE_URL`` (for the ``alembic`` command, which needs no master key)."""
    return _database_url(os.environ if env is None else env)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (``os.environ`` unless given) and the YAML file."""
    env = os.environ if env is None else env
    master_key = env.get("NEUROROUTE_MASTER_KEY", "")
    if not master_key:
        raise ConfigError("NEUROROUTE_MASTER_KEY: not set. The gateway never runs open; "
                          "set a secret master key (make run uses the documented dev key).")
    if len(master_key) < 8:
        raise ConfigError("NEUROROUTE_MASTER_KEY: must be at least 8 characters")
    config_path = Path(env.get("NEUROROUTE_CONFIG") or DEFAULT_CONFIG_PATH)
    max_body = _env_number(env, "NEUROROUTE_MAX_BODY_BYTES", 16 * MIB, int)
    if max_body > 32 * MIB:
        raise ConfigError("NEUROROUTE_MAX_BODY_BYTES: at most 33554432 (32 MiB)")
    log_level = (env.get("NEUROROUTE_LOG_LEVEL") or "INFO").upper()
    strategy = env.get("NEUROROUTE_RATELIMIT_STRATEGY") or "fixed-window"
    if strategy not in ("fixed-window", "moving-window", "sliding-window-counter"):
        raise ConfigError(f"NEUROROUTE_RATELIMIT_STRATEGY: unknown strategy {strategy!r}")
    auth_failure_limit = env.get("NEUROROUTE_AUTH_FAILURE_LIMIT") or "20/minute"
    _check_limit_string("NEUROROUTE_AUTH_FAILURE_LIMIT", auth_failure_limit)
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"NEUROROUTE_LOG_LEVEL: unknown level {log_level!r}")
    deployments, routing = load_config_file(config_path, env)
    return Settings(
        master_key=master_key,
        config_path=config_path,
        deployments=deployments,
        max_body_bytes=max_body,
        upstream_connect_timeout=_env_number(env, "NEUROROUTE_UPSTREAM_CONNECT_TIMEOUT", 5.0,
                                             float),
        upstream_read_timeout=_env_number(env, "NEUROROUTE_UPSTREAM_READ_TIMEOUT", 600.0, float),
        upstream_pool_maxsize=_env_number(env, "NEUROROUTE_UPSTREAM_POOL_MAXSIZE", 2048, int),
        upstream_trust_env=_env_bool(env, "NEUROROUTE_UPSTREAM_TRUST_ENV", False),
        log_level=log_level,
        access_log=_env_bool(env, "NEUROROUTE_ACCESS_LOG", True),
        metrics_token=env.get("NEUROROUTE_METRICS_TOKEN") or None,
        metrics_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        trusted_proxy_hops=_env_number(env, "NEUROROUTE_TRUSTED_PROXY_HOPS", 0, int,
                                       allow_zero=True),
        redis_namespace=env.get("NEUROROUTE_REDIS_NAMESPACE") or "neuroroute",
        ratelimit_strategy=strategy,
        default_rpm=_env_optional_count(env, "NEUROROUTE_DEFAULT_RPM"),
        default_tpm=_env_optional_count(env, "NEUROROUTE_DEFAULT_TPM"),
        auth_failure_limit=auth_failure_limit,
        cache_ttl=_env_number(env, "NEUROROUTE_CACHE_TTL", 300, int),
        usage_enabled=_env_bool(env, "NEUROROUTE_USAGE_ENABLED", True),
        usage_queue_max=_env_number(env, "NEUROROUTE_USAGE_QUEUE_MAX", 100_000, int),
        usage_batch_size=_env_number(env, "NEUROROUTE_USAGE_BATCH_SIZE", 500, int),
        usage_flush_interval=_env_number(env, "NEUROROUTE_USAGE_FLUSH_INTERVAL", 1.0, float),
        soft_budget_ratio=_env_number(env, "NEUROROUTE_SOFT_BUDGET_RATIO", 0.8, float),
        budget_refresh_interval=_env_number(env, "NEUROROUTE_BUDGET_REFRESH_INTERVAL", 2.0,
                                            float),
        database_url=_database_url(env),
        db_pool_size=_env_number(env, "NEUROROUTE_DB_POOL_SIZE", 10, int),
        db_max_overflow=_env_number(env, "NEUROROUTE_DB_MAX_OVERFLOW", 10, int, allow_zero=True),
        db_pool_timeout=_env_number(env, "NEUROROUTE_DB_POOL_TIMEOUT", 5.0, float),
        sync_interval=_env_number(env, "NEUROROUTE_SYNC_INTERVAL", 2.0, float),
        redis_url=_redis_url(env),
        key_cache_ttl=_env_number(env, "NEUROROUTE_KEY_CACHE_TTL", 60.0, float),
        last_used_flush_interval=_env_number(env, "NEUROROUTE_LAST_USED_FLUSH_INTERVAL", 30.0,
                                             float),
        routing=routing,
        cors_origins=_cors_origins(env),
        responses_retention_days=_env_number(env, "NEUROROUTE_RESPONSES_RETENTION_DAYS", 30,
                                             int, allow_zero=True),
        secret_key=_secret_key(env),
        console_session_ttl=_env_number(env, "NEUROROUTE_CONSOLE_SESSION_TTL", 8 * 3600, int),
    )
