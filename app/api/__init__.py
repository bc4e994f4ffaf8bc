"""HTTP layer: one module per blueprint, plus the request hooks they share."""

from __future__ import annotations

import os
import re
import uuid

from flask import Flask, Response, g, request
from werkzeug.datastructures import Headers

from app.api.observe import Observer, RequestLog
from app.auth.service import Principal
from app.auth.sessions import CSRF_HEADER, cookie_name
from app.errors import AuthenticationError, PermissionDeniedError
from app.gateway import Gateway

REQUEST_ID_HEADER = "X-Request-ID"
WORKER_HEADER = "X-NeuroRoute-Worker"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Paths that need a bearer key; everything else (health, docs, openapi) is public.
PROTECTED_PREFIXES = ("/v1/", "/admin/")
# The admin API also takes the operator console's session cookie (app.auth.sessions) from
# requests without an Authorization header.
SESSION_PREFIX = "/admin/"
# Console sign-in: the key in the Authorization header, checked (and failures counted by the
# failed-authentication limit) like any API call's.
SIGN_IN = ("POST", "/ui/session")


def register_request_hooks(app: Flask, gw: Gateway) -> None:
    """Request id, observation and authentication.

    Authentication is *recorded* here (``g.principal`` or ``g.auth_error``) and enforced by
    :func:`register_auth_enforcement`, registered after the failed-authentication limit, so
    that limit can count guesses per client address before the 401 is raised. Before a key is
    checked, the worker's view of keys and deployments is made fresh (``app.sync``).
    """
    pid = str(os.getpid())  # read after the fork: create_app runs in each worker
    observer = Observer(recorder=gw.recorder, labels=gw.labels,
                        access_log_enabled=gw.settings.access_log)

    @app.before_request
    def _request_id_and_auth() -> None:
        rid = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = rid if rid and _VALID_REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        log = g.log = observer.start(RequestLog(
            g.request_id, request.method, request.path,
            request.url_rule.rule if request.url_rule else "unmatched", request.remote_addr))
        if request.path.startswith(PROTECTED_PREFIXES) or (
                request.method, request.path) == SIGN_IN:
            gw.sync.maybe_refresh()
            try:
                g.principal = _authenticate(gw)
            except (AuthenticationError, PermissionDeniedError) as err:  # 403: CSRF token
                g.auth_error = err
            else:
                log.key_id = g.principal.key_id

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or uuid.uuid4().hex
        # Which worker process answered: lets operators (and the multi-worker tests) see that
        # a change reached every worker. A pid is not a secret.
        response.headers[WORKER_HEADER] = pid
        log: RequestLog | None = g.get("log")
        if log is not None:
            status, code = response.status_code, g.get("error_code")
            # Runs when the server closes the response: after a stream's last byte.
            response.call_on_close(lambda: observer.finish(log, status, code))
        return response


def credentials(headers: Headers) -> str | None:
    """The ``Authorization`` header; Anthropic's clients send their key as ``x-api-key``."""
    value = headers.get("Authorization")
    if value is None:
        key = headers.get("x-api-key")
        if key:
            return f"Bearer {key}"
    return value


def _authenticate(gw: Gateway) -> Principal:
    """The key's principal; on /admin/* without one, the console session's, if sent (with
    the CSRF token checked for a change)."""
    presented = credentials(request.headers)
    if presented is None and request.path.startswith(SESSION_PREFIX):
        cookie = request.cookies.get(cookie_name(request.is_secure))
        if cookie is not None:
            return gw.sessions.authenticate(cookie, method=request.method,
                                            csrf_token=request.headers.get(CSRF_HEADER))
    return gw.authenticator.authenticate(presented)


def register_auth_enforcement(app: Flask) -> None:
    @app.before_request
    def _enforce_auth() -> None:
        err = g.get("auth_error")
        if err is not None:
            raise err
