"""Admin API schemas: every request body, query string and response of ``/admin/*``.

Request schemas reject unknown fields (a typo is a 400 naming the field, not a silent no-op).
``*UpdateRequest`` schemas are loaded with ``partial=True``: only the fields sent change, and
``null`` clears an optional field. Secrets (client keys after creation, upstream API keys and
header values) are never part of a response schema.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from app.db.models import BUDGET_PERIODS, ROLES
from app.providers.kinds import PROVIDER_KINDS
from app.schemas.common import INT32_MAX, Int64, StrictBoolean, StrictFloat, Text
from app.schemas.config import DeploymentConfigSchema
from app.settings import ENV_REF_PREFIX

MAX_PAGE = 100
KEY_STATUSES = ("active", "revoked", "disabled", "expired")
_ID = validate.Length(min=1, max=256)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time with a zone, stored and shown in UTC whatever offset was sent."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        parsed: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
            raise ValidationError("Out of range once converted to UTC.") from None


class _Request(Schema):
    """A request body or query: unknown fields are errors. ``PARTIAL`` schemas (updates)
    load only the fields sent, so the class alone says how it loads (and is documented)."""

    PARTIAL = False

    class Meta:
        unknown = RAISE

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("partial", self.PARTIAL)
        super().__init__(**kwargs)


# -- query strings -------------------------------------------------------------------------


class PageQuerySchema(_Request):
    limit = Int64(minimum=1, maximum=MAX_PAGE, strict=False, load_default=20,
                  metadata={"description": f"Page size, 1 to {MAX_PAGE}."})


class IdPageQuerySchema(PageQuerySchema):
    after = Text(validate=_ID, metadata={
        "description": "Cursor: the `last_id` of the previous page."})


class KeyListQuerySchema(IdPageQuerySchema):
    user_id = Text(validate=_ID)
    team_id = Text(validate=_ID)
    role = Text(validate=validate.OneOf(ROLES))
    status = Text(validate=validate.OneOf(KEY_STATUSES))


class UserListQuerySchema(IdPageQuerySchema):
    team_id = Text(validate=_ID)
    role = Text(validate=validate.OneOf(ROLES))
    email = Text(validate=validate.Length(min=1, max=320))


class TeamListQuerySchema(IdPageQuerySchema):
    name = Text(validate=validate.Length(min=1, max=200))


class DeploymentListQuerySchema(IdPageQuerySchema):
    name = Text(validate=_ID)
    provider = Text(validate=validate.OneOf(PROVIDER_KINDS))


class AuditListQuerySchema(PageQuerySchema):
    after = Int64(minimum=0, strict=False, metadata={
        "description": "Cursor: the `last_id` of the previous page."})
    entity = Text(validate=validate.OneOf(("api_key", "user", "team", "deployment")))
    entity_id = Text(validate=_ID)
    actor = Text(validate=validate.Length(min=1, max=64))
    action = Text(validate=validate.OneOf(("create", "update", "delete", "revoke",
                                                    "rotate")))


# -- API keys ------------------------------------------------------------------------------


class KeyUpdateSchema(_Request):
    PARTIAL = True

    name = Text(validate=validate.Length(min=1, max=200))
    role = Text(validate=validate.OneOf(ROLES))
    user_id = Text(allow_none=True, validate=_ID)
    team_id = Text(allow_none=True, validate=_ID)
    allowed_models = fields.List(Text(validate=_ID), allow_none=True, metadata={
        "description": "Model names the key may use; null: every model."})
    rpm_limit = Int64(minimum=1, maximum=INT32_MAX, allow_none=True)  # the column's range
    tpm_limit = Int64(minimum=1, maximum=INT32_MAX, allow_none=True)
    max_budget = StrictFloat(allow_none=True, validate=validate.Range(min=0))
    budget_period = Text(allow_none=True, validate=validate.OneOf(BUDGET_PERIODS))
    expires_at = UtcDateTime(allow_none=True, metadata={
        "description": "ISO 8601 with a time zone; null: never expires."})
    disabled = StrictBoolean()

    @validates_schema
    def _expiry_in_future(self, data: dict[str, Any], **_: Any) -> None:
        expires = data.get("expires_at")
        if expires is not None and expires <= datetime.now(UTC):
            raise ValidationError("Must be in the future.", "expires_at")


class KeyCreateSchema(KeyUpdateSchema):
    PARTIAL = False
    name = Text(required=True, validate=validate.Length(min=1, max=200))


class KeySchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("api_key")
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={
        "description": "The key's first characters, to recognise it."})
    role = fields.String(required=True, metadata={"enum": list(ROLES)})
    status = fields.String(required=True, metadata={"enum": list(KEY_STATUSES)})
    user_id = fields.String(allow_none=True)
    team_id = fields.String(allow_none=True)
    allowed_models = fields.List(fields.String(), allow_none=True)
    rpm_limit = fields.Integer(allow_none=True)
    tpm_limit = fields.Integer(allow_none=True)
    max_budget = fields.Float(allow_none=True)
    budget_period = fields.String(allow_none=True)
    spend = fields.Float(metadata={
        "description": "USD spent in the current budget period (all time without a period), "
                       "as recorded so far (usage is written in batches)."})
    expires_at = fields.DateTime(allow_none=True)
    disabled = fields.Boolean(required=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True, metadata={
        "description": "Written in batches: up to NEUROROUTE_LAST_USED_FLUSH_INTERVAL late."})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class KeyWithSecretSchema(KeySchema):
    key = fields.String(required=True, metadata={
        "description": "The key itself. Shown once (creation, rotation); only its hash is kept."})


def _list_schema(item: type[Schema], name: str,
                 id_field: type[fields.Field[Any]] = fields.String) -> type[Schema]:
    """A page of ``item``: ``data``, ``has_more`` and the ids to continue from (``after``)."""
    return Schema.from_dict({
        "object": fields.Constant("list", required=True),
        "data": fields.List(fields.Nested(item), required=True),
        "has_more": fields.Boolean(required=True),
        "first_id": id_field(required=True, allow_none=True),
        "last_id": id_field(required=True, allow_none=True, metadata={
            "description": "Pass as `after` to get the next page."}),
    }, name=name)


KeyListSchema = _list_schema(KeySchema, "KeyList")


# -- users and teams -----------------------------------------------------------------------


class UserUpdateSchema(_Request):
    PARTIAL = True

    email = fields.Email(validate=validate.Length(max=320))
    name = Text(allow_none=True, validate=validate.Length(max=200))
    role = Text(validate=validate.OneOf(ROLES))
    team_id = Text(allow_none=True, validate=_ID)
    max_budget = StrictFloat(allow_none=True, validate=validate.Range(min=0), metadata={
        "description": "USD per budget_period; requests are refused (429 insufficient_quota) "
                       "once it is spent"})
    budget_period = Text(allow_none=True, validate=validate.OneOf(BUDGET_PERIODS))


class UserCreateSchema(UserUpdateSchema):
    PARTIAL = False
    email = fields.Email(required=True, validate=validate.Length(max=320))


class UserSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("user")
    email = fields.String(required=True)
    name = fields.String(allow_none=True)
    role = fields.String(required=True, metadata={"enum": list(ROLES)})
    team_id = fields.String(allow_none=True)
    max_budget = fields.Float(allow_none=True)
    budget_period = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


UserListSchema = _list_schema(UserSchema, "UserList")


class TeamUpdateSchema(_Request):
    PARTIAL = True

    name = Text(validate=validate.Length(min=1, max=200))
    max_budget = StrictFloat(allow_none=True, validate=validate.Range(min=0), metadata={
        "description": "USD per budget_period; requests are refused (429 insufficient_quota) "
                       "once it is spent"})
    budget_period = Text(allow_none=True, validate=validate.OneOf(BUDGET_PERIODS))


class TeamCreateSchema(TeamUpdateSchema):
    PARTIAL = False
    name = Text(required=True, validate=validate.Length(min=1, max=200))


class TeamSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("team")
    name = fields.String(required=True)
    max_budget = fields.Float(allow_none=True)
    budget_period = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


TeamListSchema = _list_schema(TeamSchema, "TeamList")


# -- deployments ---------------------------------------------------------------------------


def _check_api_base(provider: str | None, api_base: Any) -> None:
    if provider is None:
        return
    if provider != "mock" and not api_base:
        raise ValidationError(f"Required for provider '{provider}'.", "api_base")
    if provider == "mock" and api_base:
        raise ValidationError("The mock provider has no upstream.", "api_base")


def _no_env_reference(api_key: Any) -> None:
    # The gateway would send "os.environ/NAME" upstream as the key itself: refuse it clearly.
    if isinstance(api_key, str) and api_key.startswith(ENV_REF_PREFIX):
        raise ValidationError("Environment references are only read from the YAML file; "
                              "send the key itself (it is write-only).", "api_key")


class DeploymentCreateSchema(DeploymentConfigSchema):
    """A YAML ``models:`` entry, sent as JSON. ``api_key`` and ``headers`` are write-only."""

    class Meta:
        unknown = RAISE
        # _api_base_rule, for the OpenAPI document (app.api.spec.SchemaExtrasPlugin)
        openapi = {"if": {"properties": {"provider": {"const": "mock"}},
                          "required": ["provider"]},
                   "then": {"not": {"required": ["api_base"]}},
                   "else": {"required": ["api_base"]}}

    id = Text(validate=_ID, metadata={
        "description": "Stable id; generated when absent. Must differ from the YAML ids."})
    api_key = Text(validate=validate.Length(min=1), load_only=True, metadata={
        "description": "Upstream key (write-only: never returned); not an `os.environ/` "
                       "reference, which only the YAML file resolves.",
        "not": {"pattern": f"^{re.escape(ENV_REF_PREFIX)}"}})
    headers = fields.Dict(keys=Text(), values=Text(), load_default=dict,
                          load_only=True, metadata={
                              "description": "Extra upstream headers (values write-only)."})

    @validates_schema
    def _api_base_rule(self, data: dict[str, Any], **_: Any) -> None:
        _check_api_base(data.get("provider"), data.get("api_base"))
        _no_env_reference(data.get("api_key"))


class DeploymentUpdateSchema(DeploymentCreateSchema):
    """Fields to change; ``null`` clears an optional one (e.g. ``api_key``). Any field of a
    new deployment but its ``id`` (in the URL; it cannot change) may be sent; the merged
    result is validated like a new deployment."""

    class Meta:
        unknown = RAISE
        exclude = ("id",)

    def __init__(self, **kwargs: Any) -> None:
        # Only what is sent (no defaults filled in over the stored values), and null is a
        # value: it removes the field from the stored entry.
        kwargs.setdefault("partial", True)
        super().__init__(**kwargs)
        for field in self.fields.values():
            field.allow_none = True

    @validates_schema
    def _api_base_rule(self, data: dict[str, Any], **_: Any) -> None:
        # Checked on the merged entry instead: a PATCH may send api_base alone.
        _no_env_reference(data.get("api_key"))


class DeploymentSchema(Schema):
    id = fields.String(required=True)
    object = fields.Constant("deployment")
    name = fields.String(required=True)
    provider = fields.String(required=True)
    model = fields.String(required=True)
    api_base = fields.String(allow_none=True)
    api_key = fields.Method("_api_key", metadata={
        "type": "string", "nullable": True,
        "description": "`<redacted>` when a key is set, else null: never the key."})
    headers = fields.Method("_headers", metadata={
        "type": "object", "description": "Header names; values redacted."})
    weight = fields.Float(required=True)
    connect_timeout = fields.Float(allow_none=True)
    read_timeout = fields.Float(allow_none=True)
    mock = fields.Dict(allow_none=True)
    options = fields.Method("_options", metadata={
        "type": "object", "nullable": True,
        "description": "Every other models: field (provider, cache, routing...); "
                       "secrets redacted."})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)

    def _api_key(self, obj: Any) -> str | None:
        return "<redacted>" if obj.api_key else None

    def _headers(self, obj: Any) -> dict[str, str]:
        return {name: "<redacted>" for name in obj.headers or {}}

    def _options(self, obj: Any) -> dict[str, Any] | None:
        from app.db.repo import redact_options

        return redact_options(obj.options)


DeploymentListSchema = _list_schema(DeploymentSchema, "DeploymentList")


# -- audit log -----------------------------------------------------------------------------


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True, metadata={
        "description": "Id of the acting key (`master` for the master key, `cli` for the CLI)."})
    action = fields.String(required=True)
    entity = fields.String(required=True)
    entity_id = fields.String(required=True)
    before = fields.Dict(allow_none=True, metadata={"description": "Secrets are never included."})
    after = fields.Dict(allow_none=True)


AuditListSchema = _list_schema(AuditEntrySchema, "AuditList", fields.Integer)


# -- usage ---------------------------------------------------------------------------------


class UsageQuerySchema(_Request):
    key_id = Text(validate=_ID)
    user_id = Text(validate=_ID)
    team_id = Text(validate=_ID)
    model = Text(validate=validate.Length(min=1, max=256))
    deployment = Text(validate=validate.Length(min=1, max=256), metadata={
        "description": "The id of the deployment that served the records"})
    start = UtcDateTime(default_timezone=UTC, metadata={
        "description": "ISO 8601; records at or after it"})
    end = UtcDateTime(default_timezone=UTC, metadata={
        "description": "ISO 8601; records before it"})
    group_by = Text(validate=validate.OneOf(
        ("day", "model", "key", "user", "team", "deployment")))


class UsageTotalsSchema(Schema):
    requests = fields.Integer(required=True)
    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    cost = fields.Float(required=True, metadata={"description": "USD"})
    errors = fields.Integer(required=True, metadata={"description": "status >= 400"})
    cache_hits = fields.Integer(required=True)


class UsageGroupSchema(UsageTotalsSchema):
    group = fields.String(allow_none=True, metadata={
        "description": "the day (YYYY-MM-DD) or the model/key/user/team/deployment id"})


class UsageReportSchema(Schema):
    object = fields.Constant("usage_report")
    group_by = fields.String(allow_none=True)
    totals = fields.Nested(UsageTotalsSchema, required=True)
    groups = fields.List(fields.Nested(UsageGroupSchema), required=True)
