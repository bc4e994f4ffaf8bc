"""Schemas and fields shared by several endpoints, and the one marshmallow error flattener."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from app.errors import InvalidRequestError

# Every integer the gateway accepts fits a signed 64-bit integer: what SQLite's INTEGER,
# PostgreSQL's BIGINT and Redis' counters hold (beyond, they raise OverflowError).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Columns declared INTEGER (a key's rpm_limit/tpm_limit) are 32-bit on PostgreSQL.
INT32_MAX = 2**31 - 1
MISSING_MESSAGE = "Missing data for required field."


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


class Int64(fields.Integer):
    """An integer within ``minimum``..``maximum``, never beyond 64 bits (documented as such).

    ``strict`` (the default, for JSON bodies) refuses numeric strings, booleans and fractions.
    ``2.0`` is the number 2 in JSON and in JSON Schema (whose ``integer`` the document says),
    so it is accepted as 2; query strings pass ``strict=False``.
    """

    def __init__(self, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX,
                 strict: bool = True, **kwargs: Any) -> None:
        if not INT64_MIN <= minimum <= maximum <= INT64_MAX:
            raise ValueError("Int64 bounds must lie within 64 bits")
        self._range = validate.Range(min=minimum, max=maximum)
        super().__init__(strict=strict, validate=self._range, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if type(value) is float and value.is_integer():
            if abs(value) >= 2.0**63:
                # orjson also reads an integer beyond 64 bits as a float (10**30 -> 1e30, and
                # -2**63 - 1 rounds to -2.0**63): that is out of range, not "not an integer".
                self._range(math.copysign(math.inf, value))
            value = int(value)
            self._range(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Text(fields.String):
    """A string both databases can store: PostgreSQL refuses NUL characters in text and JSON."""

    default_error_messages = {"nul": "Must not contain NUL (\\u0000) characters."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("nul")
        return text


class ErrorDetailSchema(Schema):
    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)


class ErrorSchema(Schema):
    """OpenAI's error envelope: every 4xx/5xx body has this shape."""

    error = fields.Nested(ErrorDetailSchema, required=True)


def first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first (param path, message) in marshmallow's nested errors, e.g. messages[0].role."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if isinstance(key, int):
            path = f"{prefix}[{key}]"
        elif key == "_schema":
            path = prefix
        else:
            path = f"{prefix}.{key}" if prefix else str(key)
        return first_error(value, path)
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], str):
            return prefix, messages[0]
        return first_error(messages[0], prefix)
    return prefix, str(messages)


def invalid_request(messages: Any) -> InvalidRequestError:
    """OpenAI's 400 for marshmallow's errors: ``param`` names the first invalid field."""
    param, message = first_error(messages)
    if message == MISSING_MESSAGE:
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                   code="missing_required_parameter")
    return InvalidRequestError(f"Invalid value for '{param}': {message}", param=param or None,
                               code="invalid_value")
