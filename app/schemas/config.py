"""Schema of the YAML model/provider file named by ``NEUROROUTE_CONFIG``.

Unknown keys are errors, so a typo in the file fails loudly at start-up instead of being
silently ignored.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.providers.kinds import PROVIDER_KINDS


class MockParamsSchema(Schema):
    class Meta:
        unknown = RAISE

    latency_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=600_000))
    ttft_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=600_000))
    tokens = fields.Integer(load_default=16, strict=True,
                            validate=validate.Range(min=1, max=1_000_000))
    interval_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=60_000))


class CachePolicySchema(Schema):
    class Meta:
        unknown = RAISE

    ttl = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    scope = fields.String(load_default="team", validate=validate.OneOf(("key", "team", "global")))


class DeploymentConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=256))
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDER_KINDS))
    model = fields.String(required=True, validate=validate.Length(min=1, max=256))
    id = fields.String(validate=validate.Length(min=1, max=256))
    api_base = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key = fields.String(validate=validate.Length(min=1))
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    weight = fields.Float(load_default=1.0, validate=validate.Range(min=0, min_inclusive=False))
    connect_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    read_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    mock = fields.Nested(MockParamsSchema)
    cache = fields.Nested(CachePolicySchema)


class ConfigFileSchema(Schema):
    class Meta:
        unknown = RAISE

    models = fields.List(fields.Nested(DeploymentConfigSchema), required=True,
                         validate=validate.Length(min=1))
