"""Reading request bodies: JSON objects only, within the configured size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from flask import current_app, request
from marshmallow import Schema

from app.errors import InvalidRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from app.schemas.common import invalid_request


def read_body() -> bytes:
    """The raw body. Raises PayloadTooLargeError (413) above ``NEUROROUTE_MAX_BODY_BYTES``.

    A body with a Content-Length above the limit is refused before it is read; a chunked one
    (no Content-Length) is read up to one byte past the limit, so a body that is too large is
    refused, never cut at the limit and parsed.
    """
    limit: int = current_app.config["MAX_CONTENT_LENGTH"]
    length = request.content_length
    if length is not None:
        if length > limit:
            raise PayloadTooLargeError(f"Request body too large (over {limit} bytes).")
        return request.get_data(cache=False)
    data: bytes = request.environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(f"Request body too large (over {limit} bytes).")
    return data


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object.

    Raises UnsupportedMediaTypeError (415) unless the body is sent as JSON,
    PayloadTooLargeError (413) above the configured limit, and InvalidRequestError (400) for
    a body that is not a JSON object.
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json.")
    raw = read_body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request: {exc}.",
                                  code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return body


def validated_by(schema: Schema) -> Callable[[dict[str, Any]], None]:
    """A check of a JSON body against ``schema``: raises InvalidRequestError (400) with
    ``param`` naming the first invalid field (e.g. ``input[3]``)."""

    def validate(body: dict[str, Any]) -> None:
        errors = schema.validate(body)
        if errors:
            raise invalid_request(errors)

    return validate
