"""Schema of the YAML model/provider file named by ``NEUROROUTE_CONFIG``.

Unknown keys are errors, so a typo in the file fails loudly at start-up instead of being
silently ignored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from app.providers.kinds import PROVIDER_KINDS
from app.schemas.common import Int64, Text

STRATEGIES = ("weighted", "round-robin", "least-in-flight", "lowest-latency", "cheapest")
CAPABILITIES = ("vision", "tools", "json")
ENDPOINT_FAMILIES = ("chat", "embeddings", "completions")
# The classifier's signals a rule can test (see app/routing/auto.py).
RULE_SIGNALS = ("code", "math", "reasoning", "analysis", "tools", "images", "json")
# A cache entry's lifetime: Redis takes expiries up to about 2**63 ms; a year is plenty.
MAX_TTL_S = 366 * 24 * 3600
# Bounds that keep sums and sockets finite: a socket refuses a timeout beyond time_t, and
# weights or prices near float's maximum add up to infinity.
MAX_WEIGHT = 1_000_000.0
_TIMEOUT = validate.Range(min=0, max=86_400, min_inclusive=False)
_PRICE = validate.Range(min=0, max=1_000_000)


class MockParamsSchema(Schema):
    class Meta:
        unknown = RAISE

    latency_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=600_000))
    ttft_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=600_000))
    tokens = Int64(minimum=1, maximum=1_000_000, load_default=16)
    interval_ms = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=60_000))


class CachePolicySchema(Schema):
    class Meta:
        unknown = RAISE

    ttl = Int64(minimum=0, maximum=MAX_TTL_S, load_default=0)
    scope = Text(load_default="team", validate=validate.OneOf(("key", "team", "global")))


class OAuth2ClientCredentialsSchema(Schema):
    """``auth:`` of a deployment whose upstream takes OAuth2 client-credentials tokens."""

    class Meta:
        unknown = RAISE

    type = Text(required=True, validate=validate.OneOf(["oauth2_client_credentials"]))
    token_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    client_id = Text(required=True, validate=validate.Length(min=1))
    client_secret = Text(required=True, validate=validate.Length(min=1))
    scope = Text(validate=validate.Length(min=1))
    audience = Text(validate=validate.Length(min=1))
    # basic: HTTP Basic auth (RFC 6749's recommendation); body: id and secret as form fields
    client_auth = Text(load_default="basic", validate=validate.OneOf(["basic", "body"]))


class DeploymentConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Text(required=True, validate=validate.Length(min=1, max=256))
    provider = Text(required=True, validate=validate.OneOf(PROVIDER_KINDS))
    model = Text(required=True, validate=validate.Length(min=1, max=256))
    id = Text(validate=validate.Length(min=1, max=256))
    api_base = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key = Text(validate=validate.Length(min=1))
    headers = fields.Dict(keys=Text(), values=Text(), load_default=dict)
    weight = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=MAX_WEIGHT,
                                                                    min_inclusive=False))
    connect_timeout = fields.Float(validate=_TIMEOUT)
    read_timeout = fields.Float(validate=_TIMEOUT)
    mock = fields.Nested(MockParamsSchema)
    cache = fields.Nested(CachePolicySchema)
    # Ask for usage on streams even when the client did not (stripped before the client sees
    # it); turn off for servers that reject stream_options.
    stream_usage = fields.Boolean(load_default=True)
    auth = fields.Nested(OAuth2ClientCredentialsSchema)
    api_version = Text(validate=validate.Length(min=1, max=64))  # azure
    anthropic_version = Text(validate=validate.Length(min=1, max=64))  # anthropic
    default_max_tokens = Int64(minimum=1, maximum=1_000_000)  # anthropic requires max_tokens
    # Routing: capacity, prices and what the deployment can do (all optional).
    rpm = Int64(minimum=1)
    tpm = Int64(minimum=1)
    input_cost_per_mtok = fields.Float(validate=_PRICE)
    output_cost_per_mtok = fields.Float(validate=_PRICE)
    cached_input_cost_per_mtok = fields.Float(validate=_PRICE)
    max_input_tokens = Int64(minimum=1)
    capabilities = fields.List(Text(validate=validate.OneOf(CAPABILITIES)),
                               load_default=list)
    tier = Text(validate=validate.Length(min=1, max=64))
    # What it serves (default: chat; the mock model serves all three).
    endpoints = fields.List(Text(validate=validate.OneOf(ENDPOINT_FAMILIES)),
                            validate=validate.Length(min=1))
    responses_api = fields.Boolean()  # openai/azure: relay /v1/responses as is


class CooldownConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    failures = Int64(minimum=1, maximum=10_000, load_default=5)
    window_s = fields.Float(load_default=60.0, validate=validate.Range(min=0.01, max=86_400))
    cooldown_s = fields.Float(load_default=30.0, validate=validate.Range(min=0.01, max=86_400))


class RouterSettingsSchema(Schema):
    class Meta:
        unknown = RAISE

    strategy = Text(load_default="weighted", validate=validate.OneOf(STRATEGIES))
    retries = Int64(minimum=0, maximum=10, load_default=2)
    backoff_initial_s = fields.Float(load_default=0.1, validate=validate.Range(min=0, max=60))
    backoff_max_s = fields.Float(load_default=2.0, validate=validate.Range(min=0, max=300))
    retry_after_max_s = fields.Float(load_default=5.0, validate=validate.Range(min=0, max=300))
    deadline_s = fields.Float(load_default=120.0,
                              validate=validate.Range(min=0, min_inclusive=False, max=3600))
    latency_ewma_alpha = fields.Float(load_default=0.3,
                                      validate=validate.Range(min=0, max=1, min_inclusive=False))
    cooldown = fields.Nested(CooldownConfigSchema, required=True)

    @pre_load
    def _default_cooldown(self, data: Any, **kwargs: Any) -> Any:
        # A missing section still gets its defaults (a load_default would skip the schema).
        if isinstance(data, dict) and data.get("cooldown") is None:
            return {**data, "cooldown": {}}
        return data


class GroupConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    strategy = Text(validate=validate.OneOf(STRATEGIES))
    retries = Int64(minimum=0, maximum=10)
    fallbacks = fields.List(Text(validate=validate.Length(min=1)), load_default=list)
    context_window_fallbacks = fields.List(Text(validate=validate.Length(min=1)),
                                           load_default=list)


class RuleConditionSchema(Schema):
    """All given conditions must hold for the rule to match."""

    class Meta:
        unknown = RAISE

    min_tokens = Int64(minimum=0)
    code = fields.Boolean()
    math = fields.Boolean()
    reasoning = fields.Boolean()
    analysis = fields.Boolean()
    tools = fields.Boolean()
    images = fields.Boolean()
    json = fields.Boolean()
    keywords = fields.List(Text(validate=validate.Length(min=1)))


class AutoRuleSchema(Schema):
    class Meta:
        unknown = RAISE

    tier = Text(required=True)
    when = fields.Nested(RuleConditionSchema, required=True)


class AutoRouterSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Text(required=True, validate=validate.Length(min=1, max=256))
    tiers = fields.List(Text(validate=validate.Length(min=1, max=64)),
                        load_default=lambda: ["small", "medium", "large"],
                        validate=validate.Length(min=1))
    default_tier = Text()
    expected_output_tokens = Int64(minimum=0, maximum=1_000_000, load_default=500)
    rules = fields.List(fields.Nested(AutoRuleSchema))

    @validates_schema
    def _tiers_known(self, data: dict[str, Any], **kwargs: Any) -> None:
        tiers = data["tiers"]
        if len(set(tiers)) != len(tiers):
            raise ValidationError("Tiers must be unique.", field_name="tiers")
        if data.get("default_tier", tiers[0]) not in tiers:
            raise ValidationError(f"Must be one of {tiers}.", field_name="default_tier")
        for index, rule in enumerate(data.get("rules") or []):
            if rule["tier"] not in tiers:
                raise ValidationError({index: {"tier": [f"Must be one of {tiers}."]}},
                                      field_name="rules")


class ConfigFileSchema(Schema):
    class Meta:
        unknown = RAISE

    models = fields.List(fields.Nested(DeploymentConfigSchema), required=True,
                         validate=validate.Length(min=1))
    router_settings = fields.Nested(RouterSettingsSchema, required=True)
    groups = fields.Dict(keys=Text(), values=fields.Nested(GroupConfigSchema),
                         load_default=dict)
    auto_routers = fields.List(fields.Nested(AutoRouterSchema), load_default=list)

    @pre_load
    def _default_router_settings(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("router_settings") is None:
            return {**data, "router_settings": {}}
        return data
