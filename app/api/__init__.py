"""HTTP layer: one module per blueprint, plus the request hooks they share."""

from __future__ import annotations

import os
import re
import uuid

from flask import Flask, Response, g, request

from app.extensions import gateway

REQUEST_ID_HEADER = "X-Request-ID"
WORKER_HEADER = "X-NeuroRoute-Worker"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Paths that need a bearer key; everything else (health, docs, openapi) is public.
PROTECTED_PREFIXES = ("/v1/", "/admin/")


def register_request_hooks(app: Flask) -> None:
    pid = str(os.getpid())  # read after the fork: create_app runs in each worker

    @app.before_request
    def _request_id_and_auth() -> None:
        rid = request.headers.get(REQUEST_ID_HEADER)
        g.request_id = rid if rid and _VALID_REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex
        if request.path.startswith(PROTECTED_PREFIXES):
            gw = gateway()
            # At most one small query every NEUROROUTE_SYNC_INTERVAL seconds (see app.sync).
            gw.sync.maybe_refresh()
            g.principal = gw.authenticator.authenticate(
                request.headers.get("Authorization"))

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or uuid.uuid4().hex
        # Which worker process answered: lets operators (and the multi-worker tests) see that
        # a change reached every worker. A pid is not a secret.
        response.headers[WORKER_HEADER] = pid
        return response
