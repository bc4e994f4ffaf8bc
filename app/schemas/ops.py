"""Health and admin response shapes."""

from marshmallow import Schema, fields


class LiveSchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})


class CheckSchema(Schema):
    status = fields.String(required=True)
    detail = fields.Dict()


class ReadySchema(Schema):
    status = fields.String(required=True, metadata={"enum": ["ready", "degraded", "not_ready"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(CheckSchema), required=True)


class DeploymentPublicSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    model = fields.String(required=True)
    api_base = fields.String(allow_none=True)
    api_key = fields.String(allow_none=True, metadata={"description": "always redacted"})
    headers = fields.Dict(metadata={"description": "values redacted"})
    weight = fields.Float()
    connect_timeout = fields.Float(allow_none=True)
    read_timeout = fields.Float(allow_none=True)
    mock = fields.Dict(allow_none=True)
    rpm = fields.Integer(allow_none=True)
    tpm = fields.Integer(allow_none=True)
    input_cost_per_mtok = fields.Float(allow_none=True)
    output_cost_per_mtok = fields.Float(allow_none=True)
    cached_input_cost_per_mtok = fields.Float(allow_none=True)
    max_input_tokens = fields.Integer(allow_none=True)
    capabilities = fields.List(fields.String())
    tier = fields.String(allow_none=True)


class EffectiveConfigSchema(Schema):
    master_key = fields.String(metadata={"description": "always redacted"})
    config_path = fields.String()
    max_body_bytes = fields.Integer()
    upstream_connect_timeout = fields.Float()
    upstream_read_timeout = fields.Float()
    upstream_pool_maxsize = fields.Integer()
    upstream_trust_env = fields.Boolean()
    log_level = fields.String()
    database_url = fields.String(metadata={"description": "password redacted"})
    db_pool_size = fields.Integer()
    db_max_overflow = fields.Integer()
    db_pool_timeout = fields.Float()
    sync_interval = fields.Float()
    redis_url = fields.String(allow_none=True, metadata={"description": "password redacted"})
    key_cache_ttl = fields.Float()
    last_used_flush_interval = fields.Float()
    models = fields.List(fields.Nested(DeploymentPublicSchema),
                         metadata={"description": "the YAML file's deployments"})
    routing = fields.Dict(metadata={"description": "router_settings and group policies"})


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
