"""The operator console's session answers (``/ui/session``)."""

from __future__ import annotations

from marshmallow import Schema, fields


class ConsoleSessionSchema(Schema):
    object = fields.Constant("console_session", required=True)
    signed_in = fields.Boolean(required=True)
    key_id = fields.String(allow_none=True, metadata={
        "description": "The signed-in key's id (`master` for the master key)."})
    role = fields.String(allow_none=True, metadata={"enum": ["admin", None]})
    csrf_token = fields.String(allow_none=True, metadata={
        "description": "Send it in `X-CSRF-Token` with every change made with this session "
                       "(anything but GET on /admin/*, and signing out)."})
    expires_at = fields.DateTime(allow_none=True, metadata={
        "description": "When the session ends (NEUROROUTE_CONSOLE_SESSION_TTL)."})
    reason = fields.String(allow_none=True, metadata={
        "description": "Why there is no session any more (expired, key revoked...), when "
                       "a cookie was sent."})
