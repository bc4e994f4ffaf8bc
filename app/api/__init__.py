"""HTTP layer: one module per blueprint, plus the request hooks they share."""

from __future__ import annotations

import os
import re
import uuid

from flask import Flask, Response, g, request

from app.errors import AuthenticationError
from app.extensions import gateway
from app.observability import RequestRecord

REQUEST_ID_HEADER = "X-Request-ID"
WORKER_HEADER = "X-NeuroRoute-Worker"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Paths that need a bearer key; everything else (health, docs, openapi) is public.
PROTECTED_PREFIXES = ("/v1/", "/admin/")


def register_request_hooks(app: Flask) -> None:
    """Request id, observation and authentication.

    Authentication is *recorded* here (``g.principal`` or ``g.auth_error``) and enforced by
    :func:`register_auth_enforcement`, registered after the rate limiter, so the limiter can
    count failed attempts per client address before the 401 is raised.
    """
    pid = str(os.getpid())  # read after the fork: create_app runs in each worker

    @app.before_request
    def _request_id_and_auth() -> None:
        rid = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = rid if rid and _VALID_REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        gw = gateway()
        g.record = RequestRecord(g.request_id, request.method, request.path,
                                 route=request.url_rule.rule if request.url_rule else "unmatched",
                                 client_ip=request.remote_addr)
        gw.observer.start()
        if request.path.startswith(PROTECTED_PREFIXES):
            # At most one small query every NEUROROUTE_SYNC_INTERVAL seconds (see app.sync).
            gw.sync.maybe_refresh()
            try:
                g.principal = gw.authenticator.authenticate(request.headers.get("Authorization"))
            except AuthenticationError as err:
                g.auth_error = err
            else:
                g.record.key_id = g.principal.key_id

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or uuid.uuid4().hex
        # Which worker process answered: lets operators (and the multi-worker tests) see that
        # a change reached every worker. A pid is not a secret.
        response.headers[WORKER_HEADER] = pid
        record: RequestRecord | None = g.get("record")
        if record is not None:
            record.status = response.status_code
            record.error_code = g.get("error_code")
            observer = gateway().observer
            # Runs when the server closes the response: after a stream's last byte.
            response.call_on_close(lambda: observer.finish(record))
        return response


def register_auth_enforcement(app: Flask) -> None:
    @app.before_request
    def _enforce_auth() -> None:
        err = g.get("auth_error")
        if err is not None:
            raise err
