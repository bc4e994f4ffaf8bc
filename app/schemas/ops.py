"""Health and admin response shapes."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields


class LiveSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})


class CheckSchema(Schema):
    status = fields.String(required=True)
    detail = fields.Dict()


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ready", "degraded", "not_ready"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema), required=True)


class MockPublicSchema(Schema):
    latency_ms = fields.Float(required=True)
    ttft_ms = fields.Float(required=True)
    tokens = fields.Integer(required=True)
    interval_ms = fields.Float(required=True)


class CachePublicSchema(Schema):
    ttl = fields.Integer(required=True)
    scope = fields.String(required=True, metadata={"enum": ["key", "team", "global"]})


class OAuth2PublicSchema(Schema):
    type = fields.String(required=True, metadata={"enum": ["oauth2_client_credentials"]})
    token_url = fields.String(required=True)
    client_id = fields.String(required=True)
    client_secret = fields.String(required=True, metadata={
        "description": "always redacted (`<redacted: os.environ/NAME>` or `<redacted: literal>`)"})
    scope = fields.String(required=True, allow_none=True)
    audience = fields.String(required=True, allow_none=True)
    client_auth = fields.String(required=True, metadata={"enum": ["basic", "body"]})


def _n(field: type[fields.Field[Any]], **kwargs: Any) -> fields.Field[Any]:
    """A field the configuration always reports, possibly null."""
    return field(required=True, allow_none=True, **kwargs)


class DeploymentPublicSchema(Schema):
    """One YAML deployment as ``/admin/config`` shows it (secrets redacted)."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    model = fields.String(required=True)
    api_base = _n(fields.String)
    api_key = _n(fields.String, metadata={"description": "always redacted"})
    headers = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                          metadata={"description": "values redacted"})
    weight = fields.Float(required=True)
    connect_timeout = _n(fields.Float)
    read_timeout = _n(fields.Float)
    mock = fields.Nested(MockPublicSchema, required=True, allow_none=True)
    cache = fields.Nested(CachePublicSchema, required=True, allow_none=True)
    auth = fields.Nested(OAuth2PublicSchema, required=True, allow_none=True)
    api_version = _n(fields.String)
    anthropic_version = _n(fields.String)
    default_max_tokens = _n(fields.Integer)
    rpm = _n(fields.Integer)
    tpm = _n(fields.Integer)
    input_cost_per_mtok = _n(fields.Float)
    output_cost_per_mtok = _n(fields.Float)
    cached_input_cost_per_mtok = _n(fields.Float)
    max_input_tokens = _n(fields.Integer)
    capabilities = fields.List(fields.String(), required=True)
    tier = _n(fields.String)
    endpoints = fields.List(fields.String(), required=True)
    responses_api = fields.Boolean(required=True)


class RetryPublicSchema(Schema):
    retries = fields.Integer(required=True)
    backoff_initial_s = fields.Float(required=True)
    backoff_max_s = fields.Float(required=True)
    retry_after_max_s = fields.Float(required=True)
    deadline_s = fields.Float(required=True)


class CooldownPublicSchema(Schema):
    failures = fields.Integer(required=True)
    window_s = fields.Float(required=True)
    cooldown_s = fields.Float(required=True)


class GroupPublicSchema(Schema):
    strategy = _n(fields.String)
    retries = _n(fields.Integer)
    fallbacks = fields.List(fields.String(), required=True)
    context_window_fallbacks = fields.List(fields.String(), required=True)


class RoutingPublicSchema(Schema):
    strategy = fields.String(required=True)
    retry = fields.Nested(RetryPublicSchema, required=True)
    cooldown = fields.Nested(CooldownPublicSchema, required=True)
    latency_ewma_alpha = fields.Float(required=True)
    groups = fields.Dict(keys=fields.String(), values=fields.Nested(GroupPublicSchema),
                         required=True)
    auto_routers = fields.List(fields.String(), required=True,
                               metadata={"description": "names of the auto routers"})


class EffectiveConfigSchema(Schema):
    """Every setting in effect (environment + YAML file), secrets redacted."""

    master_key = fields.String(required=True, metadata={"description": "always redacted"})
    config_path = fields.String(required=True)
    max_body_bytes = fields.Integer(required=True)
    upstream_connect_timeout = fields.Float(required=True)
    upstream_read_timeout = fields.Float(required=True)
    upstream_pool_maxsize = fields.Integer(required=True)
    upstream_trust_env = fields.Boolean(required=True)
    log_level = fields.String(required=True)
    access_log = fields.Boolean(required=True)
    metrics_token = _n(fields.String, metadata={"description": "redacted when set"})
    trusted_proxy_hops = fields.Integer(required=True)
    redis_namespace = fields.String(required=True)
    ratelimit_strategy = fields.String(required=True)
    default_rpm = _n(fields.Integer)
    default_tpm = _n(fields.Integer)
    auth_failure_limit = fields.String(required=True)
    cache_ttl = fields.Integer(required=True)
    usage_enabled = fields.Boolean(required=True)
    usage_queue_max = fields.Integer(required=True)
    usage_batch_size = fields.Integer(required=True)
    usage_flush_interval = fields.Float(required=True)
    soft_budget_ratio = fields.Float(required=True)
    budget_refresh_interval = fields.Float(required=True)
    database_url = fields.String(required=True, metadata={"description": "password redacted"})
    db_pool_size = fields.Integer(required=True)
    db_max_overflow = fields.Integer(required=True)
    db_pool_timeout = fields.Float(required=True)
    sync_interval = fields.Float(required=True)
    redis_url = _n(fields.String, metadata={"description": "password redacted"})
    key_cache_ttl = fields.Float(required=True)
    last_used_flush_interval = fields.Float(required=True)
    models = fields.List(fields.Nested(DeploymentPublicSchema), required=True,
                         metadata={"description": "the YAML file's deployments"})
    routing = fields.Nested(RoutingPublicSchema, required=True,
                            metadata={"description": "router_settings and group policies"})
    cors_origins = fields.List(fields.String(), required=True,
                               metadata={"description": "NEUROROUTE_CORS_ORIGINS"})
    responses_retention_days = fields.Integer(required=True, metadata={
        "description": "NEUROROUTE_RESPONSES_RETENTION_DAYS (0: kept for ever)"})
    secret_key = _n(fields.String, metadata={
        "description": "NEUROROUTE_SECRET_KEY, redacted when set (null: console sessions are "
                       "signed with a key derived from the master key)"})
    console_session_ttl = fields.Integer(required=True, metadata={
        "description": "seconds an operator console session lasts"})


class RoutedDeploymentSchema(Schema):
    id = fields.String(required=True)
    state = fields.String(required=True, metadata={"enum": ["closed", "open", "half_open"]})
    open_for_s = fields.Float(metadata={"description": "seconds until half-open"})
    recent_failures = fields.Integer(metadata={"description": "failures in the window"})
    in_flight = fields.Integer(metadata={"description": "this worker process only"})
    latency_ewma_ms = fields.Float(allow_none=True)
    ttft_ewma_ms = fields.Float(allow_none=True)
    successes = fields.Integer()
    failures = fields.Integer()
    requests_last_minute = fields.Integer()
    tokens_last_minute = fields.Integer()
    rate_limited_for_s = fields.Float()


class RoutedGroupSchema(Schema):
    name = fields.String(required=True)
    strategy = fields.String(required=True)
    retries = fields.Integer()
    fallbacks = fields.List(fields.String())
    context_window_fallbacks = fields.List(fields.String())
    deployments = fields.List(fields.Nested(RoutedDeploymentSchema))


class RoutingReportSchema(Schema):
    pid = fields.Integer(metadata={"description": "the worker process that answered"})
    breaker_backend = fields.String(metadata={"enum": ["memory", "redis", "redis-unavailable"]})
    cooldown = fields.Dict()
    groups = fields.List(fields.Nested(RoutedGroupSchema))
    auto_routers = fields.List(fields.Dict())
