"""flask-smorest, wired to the gateway: one ``Api``, a ``Blueprint`` whose argument parser
raises OpenAI's 400 envelope, and the error responses every operation documents.

``app.errors`` stays the one place that renders errors: smorest's own HTTP error handler is
not installed, and webargs' 422 (with its own body) never happens: a validation error becomes
:class:`~app.errors.InvalidRequestError` with ``param`` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, NoReturn, TypeVar, cast

import flask_smorest
from apispec import BasePlugin
from flask import Request
from marshmallow import Schema, ValidationError, fields, validate
from webargs.flaskparser import FlaskParser

from app.schemas.common import ErrorSchema, Text, invalid_request

F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
BEARER = "bearerAuth"
# Every error status the gateway (or Gunicorn in front of it) answers, with what it means in
# general; operations may say more. Registered once as components/responses/<NAME>.
ERROR_RESPONSES: dict[int, str] = {
    400: "Invalid JSON, field or query parameter (`param` names it)",
    401: "Missing, malformed, unknown, revoked, disabled or expired API key",
    403: "The key may not call this endpoint",
    404: "No such entity",
    409: "Conflicts with the current state",
    413: "Request body larger than NEUROROUTE_MAX_BODY_BYTES",
    414: "Request line (URL with its query string) longer than 4094 bytes: refused by "
         "Gunicorn before the gateway sees it",
    415: "Body not sent as application/json",
    429: "Too many failed authentications from this client address "
         "(NEUROROUTE_AUTH_FAILURE_LIMIT)",
    431: "A header longer than 8190 bytes, or more than 100 headers: refused by Gunicorn",
    500: "Internal error (no details are exposed)",
    503: "The key store (database) is unreachable and this key is not cached yet",
}
# Any request can be refused by Gunicorn or fail unexpectedly.
EVERY_OPERATION = (414, 431, 500)
# What ``Authorization: Bearer`` adds: a bad key, the failure limit, the key store.
SECURED = (*EVERY_OPERATION, 401, 429, 503)
ADMIN = (*SECURED, 403)
# What a JSON body adds to the 400 of its validation.
JSON_BODY = (413, 415)
_LOCATIONS = frozenset(("json", "query", "querystring", "view_args", "path", "headers"))


def error_response_name(status: int) -> str:
    """The component name of a status' error response, as smorest names them (NOT_FOUND)."""
    return HTTPStatus(status).name


class GatewayParser(FlaskParser):
    """webargs' parser with the gateway's rules: 400, not 422; unknown query parameters are
    errors like unknown body fields; the JSON body is read by the gateway's own reader."""

    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": None, "querystring": None}

    def __init__(self, json_body: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._json_body = json_body

    def load_json(self, req: Request, schema: Schema) -> Any:
        if self._json_body is None:
            return super().load_json(req, schema)
        return self._json_body()  # 415 unless JSON, 400 unless a JSON object, 413 too large

    def handle_error(self, error: ValidationError, req: Request, schema: Schema, *,
                     error_status_code: int | None,
                     error_headers: Any) -> NoReturn:
        messages: Any = error.messages
        if isinstance(messages, dict) and len(messages) == 1 and next(iter(messages)) in _LOCATIONS:
            messages = next(iter(messages.values()))  # webargs nests errors by location
        raise invalid_request(messages)


class SchemaExtrasPlugin(BasePlugin):
    """Adds a schema's ``Meta.openapi`` (JSON Schema keywords for what a field cannot say,
    e.g. a rule across fields) to its component in the document."""

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any
                      ) -> dict[str, Any] | None:
        schema = kwargs.get("schema")
        extras = getattr(getattr(schema, "Meta", None), "openapi", None)
        return {**definition, **extras} if extras else None


NO_NUL_PATTERN = "^[^\\u0000]*$"


def field_properties(converter: Any, field: Any, *, ret: dict[str, Any], **_: Any
                     ) -> dict[str, Any]:
    """apispec attribute function for what apispec leaves out: an exclusive bound of a
    ``Range``; a :class:`~app.schemas.common.Text` (and a dict keyed by one) refuses NUL
    characters; an http(s) URL is a ``uri`` starting with its scheme."""
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                ret.pop("minimum", None)
                ret["exclusiveMinimum"] = validator.min
            if validator.max is not None and not validator.max_inclusive:
                ret.pop("maximum", None)
                ret["exclusiveMaximum"] = validator.max
    if isinstance(field, Text):
        return {"pattern": NO_NUL_PATTERN}
    if isinstance(field, fields.Dict) and isinstance(field.key_field, Text):
        return {"propertyNames": {"pattern": NO_NUL_PATTERN}}
    if isinstance(field, fields.Url) and all(
            getattr(v, "schemes", None) == {"http", "https"} for v in field.validators):
        # JSON Schema's name for the format (marshmallow says "url"); the rest of the URL
        # syntax is marshmallow's validator's.
        return {"format": "uri", "pattern": "^https?://"}
    return {}


class Api(flask_smorest.Api):  # type: ignore[misc]  # untyped library
    """The OpenAPI document's owner. Errors are OpenAI's envelope, listed per operation."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # no catch-all "default": every status is listed

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        self.ma_plugin.converter.add_attribute_function(field_properties)

    def _register_error_handlers(self) -> None:
        """Nothing: ``app.errors.register_error_handlers`` is the one error renderer."""

    def _register_responses(self) -> None:
        for status, description in ERROR_RESPONSES.items():
            self.spec.components.response(error_response_name(status), {
                "description": description,
                "content": {"application/json": {"schema": ErrorSchema}}})

    def _register_etag_headers(self) -> None:
        """Nothing: the gateway uses no ETags."""

    def _register_pagination_header(self) -> None:
        """Nothing: lists carry their cursor in the body (``has_more``, ``last_id``)."""


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # untyped library
    """A smorest Blueprint whose every operation documents ``errors`` (and the bearer key
    when ``secured``), and whose ``@arguments`` read JSON bodies with ``json_body``."""

    def __init__(self, *args: Any, errors: Iterable[int] = EVERY_OPERATION,
                 secured: bool = False,
                 json_body: Callable[[], dict[str, Any]] | None = None,
                 body_errors: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._errors = tuple(errors)
        self._body_errors = body_errors  # False: its operations document their own 413/415
        self._secured = secured
        self.ARGUMENTS_PARSER = GatewayParser(json_body)
        self._prepare_doc_cbks.append(self._prepare_common_doc)

    # smorest is untyped: these say what its decorators return (the view, documented).

    def route(self, rule: str, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().route(rule, **options))

    def get(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route(rule, methods=["GET"], **options)

    def post(self, rule: str, **options: Any) -> Callable[[F], F]:
        return self.route(rule, methods=["POST"], **options)

    def before_request(self, func: F) -> F:
        return cast(F, super().before_request(func))

    def response(self, status_code: int, schema: Any = None, **kwargs: Any
                 ) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().response(status_code, schema, **kwargs))

    def alt_response(self, status_code: int, response: str | None = None, **kwargs: Any
                     ) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().alt_response(status_code, response, **kwargs))

    @staticmethod
    def doc(**kwargs: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], flask_smorest.Blueprint.doc(**kwargs))

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any
                  ) -> Callable[[F], F]:
        """smorest's ``arguments``; a JSON body also documents 413 and 415."""
        decorator = cast(Callable[[F], F], super().arguments(schema, location=location,
                                                             **kwargs))
        if location != "json" or not self._body_errors:
            return decorator

        def with_body_errors(func: F) -> F:
            return decorator(self.errors(*JSON_BODY)(func))

        return with_body_errors

    def errors(self, *statuses: int, **described: str) -> Callable[[F], F]:
        """Document error statuses: the shared response, or ``described`` ones (``_404=...``)
        with this operation's own description."""
        decorators = [self.alt_response(status, response=error_response_name(status))
                      for status in statuses]
        decorators += [self.alt_response(int(key.lstrip("_")), schema=ErrorSchema,
                                         description=text)
                       for key, text in described.items()]
        return documented(*decorators)

    def _prepare_common_doc(self, doc: dict[str, Any], doc_info: dict[str, Any], **_: Any
                            ) -> dict[str, Any]:
        responses = doc.setdefault("responses", {})
        for status in self._errors:
            if status not in responses and str(status) not in responses:
                responses[status] = error_response_name(status)
        if self._secured:
            doc.setdefault("security", [{BEARER: []}])
        return doc


def documented(*decorators: Callable[[Any], Any]) -> Callable[[F], F]:
    """Apply smorest decorators for the documentation they record, not for their wrappers.

    The view itself is returned unwrapped, with the recorded ``_apidoc``: for the hot path
    (chat keeps its own fast validation and its own response) and for handlers whose bodies
    already return the final response.
    """

    def apply(func: F) -> F:
        probe: Any = func
        for decorator in reversed(decorators):
            probe = decorator(probe)
        func._apidoc = probe._apidoc  # type: ignore[attr-defined]
        return func

    return apply
