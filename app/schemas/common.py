"""Schemas and fields shared by several endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields


class StrictFloat(fields.Float):
    """A JSON number only: no numeric strings, no booleans (they are passed upstream as is)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Not a valid number.")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true/false only; marshmallow's Boolean would also accept "yes", 1, "on"..."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


class ErrorDetailSchema(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)


class ErrorSchema(Schema):
    """OpenAI's error envelope: every 4xx/5xx body has this shape."""

    error = fields.Nested(ErrorDetailSchema, required=True)
