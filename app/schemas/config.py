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


class OAuth2ClientCredentialsSchema(Schema):
    """``auth:`` of a deployment whose upstream takes OAuth2 client-credentials tokens."""

    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(["oauth2_client_credentials"]))
    token_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(required=True, validate=validate.Length(min=1))
    scope = fields.String(validate=validate.Length(min=1))
    audience = fields.String(validate=validate.Length(min=1))
    # basic: HTTP Basic auth (RFC 6749's recommendation); body: id and secret as form fields
    client_auth = fields.String(load_default="basic", validate=validate.OneOf(["basic", "body"]))


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
    # Ask for usage on streams even when the client did not (stripped before the client sees
    # it); turn off for servers that reject stream_options.
    stream_usage = fields.Boolean(load_default=True)
    auth = fields.Nested(OAuth2ClientCredentialsSchema)
    api_version = fields.String(validate=validate.Length(min=1, max=64))  # azure
    anthropic_version = fields.String(validate=validate.Length(min=1, max=64))  # anthropic
    default_max_tokens = fields.Integer(strict=True,  # anthropic: max_tokens is required there
                                        validate=validate.Range(min=1, max=1_000_000))


class ConfigFileSchema(Schema):
    class Meta:
        unknown = RAISE

    models = fields.List(fields.Nested(DeploymentConfigSchema), required=True,
                         validate=validate.Length(min=1))
