"""One typed Settings object built from ``NEUROROUTE_*`` environment variables and one YAML file.

This is the only module that reads the environment. ``load_settings()`` is called once by
``create_app()`` (and by the Gunicorn master to fail fast on a bad configuration); everything
else receives the resulting :class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from marshmallow import ValidationError

from app.schemas.config import ConfigFileSchema

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "neuroroute.yaml"
ENV_REF_PREFIX = "os.environ/"
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
    # Routing: capacity (requests/tokens per minute), prices, context size and abilities.
    rpm: int | None = None
    tpm: int | None = None
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    max_input_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    tier: str | None = None

    def estimated_cost(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a request of this size at the configured prices (unpriced counts as free)."""
        return (input_tokens * (self.input_cost_per_mtok or 0.0)
                + output_tokens * (self.output_cost_per_mtok or 0.0)) / 1_000_000

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
            "rpm": self.rpm,
            "tpm": self.tpm,
            "input_cost_per_mtok": self.input_cost_per_mtok,
            "output_cost_per_mtok": self.output_cost_per_mtok,
            "max_input_tokens": self.max_input_tokens,
            "capabilities": sorted(self.capabilities),
            "tier": self.tier,
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
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    # Shared state across workers/instances (circuit breakers); None: per process only.
    redis_url: str | None = field(default=None, repr=False)
    redis_key_prefix: str = "neuroroute"

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
            "models": [d.public_dict() for d in self.deployments],
            "routing": self.routing.public_dict(),
            "redis_url": redact_url(self.redis_url),
        }


def redact_url(url: str | None) -> str | None:
    """``url`` with any password replaced, for display."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":<redacted>@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {raw!r}")
    return value


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
        if entry["provider"] != "mock" and not entry.get("api_base"):
            raise ConfigError(f"{where}.api_base: required for provider {entry['provider']!r}")
        if entry["provider"] == "mock" and entry.get("api_base"):
            raise ConfigError(f"{where}.api_base: the mock provider has no upstream")
        api_key, key_source = _resolve_secret(entry.get("api_key"), f"{where}.api_key", env)
        mock = entry.get("mock")
        deployments.append(Deployment(
            id=dep_id,
            name=entry["name"],
            provider=entry["provider"],
            model=entry["model"],
            api_base=(entry.get("api_base") or "").rstrip("/") or None,
            api_key=api_key,
            api_key_source=key_source,
            headers=dict(entry["headers"]),
            weight=entry["weight"],
            connect_timeout=entry.get("connect_timeout"),
            read_timeout=entry.get("read_timeout"),
            mock=MockParams(**mock) if mock is not None
            else (MockParams() if entry["provider"] == "mock" else None),
            rpm=entry.get("rpm"),
            tpm=entry.get("tpm"),
            input_cost_per_mtok=entry.get("input_cost_per_mtok"),
            output_cost_per_mtok=entry.get("output_cost_per_mtok"),
            max_input_tokens=entry.get("max_input_tokens"),
            capabilities=frozenset(entry["capabilities"]),
            tier=entry.get("tier"),
        ))
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
        routing=routing,
        redis_url=env.get("NEUROROUTE_REDIS_URL") or None,
        redis_key_prefix=env.get("NEUROROUTE_REDIS_KEY_PREFIX") or "neuroroute",
    )
