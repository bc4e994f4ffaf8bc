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
    models = fields.List(fields.Nested(DeploymentPublicSchema))
    routing = fields.Dict(metadata={"description": "router_settings and group policies"})
    redis_url = fields.String(allow_none=True, metadata={"description": "password redacted"})
