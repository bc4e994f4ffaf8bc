"""``/ui/session``: signing in to the operator console, who is signed in, signing out.

Signing in sends the admin key as ``Authorization: Bearer``: the request hooks check it like
any API call's (a wrong key is a 401 counted by the failed-authentication limit), and this
view turns it into a session cookie (``app.auth.sessions``): ``HttpOnly``, ``SameSite=Strict``,
``Path=/``, and ``Secure`` with the ``__Host-`` prefix when the request came over TLS (as
``X-Forwarded-Proto`` says, when ``NEUROROUTE_TRUSTED_PROXY_HOPS`` trusts the proxy). The
answer carries the session's CSRF token, which the console sends back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Response, g, jsonify, request

from app.api import credentials
from app.api.spec import BEARER, SECURED, Blueprint, documented
from app.auth.service import Principal, bearer_token
from app.auth.sessions import CSRF_HEADER, ConsoleSession, cookie_name
from app.errors import AuthenticationError, PermissionDeniedError
from app.gateway import gateway
from app.schemas.console import ConsoleSessionSchema

bp = Blueprint("session", __name__, url_prefix="/ui",
               description="Sign in to the operator console (/ui) with an admin key: a "
                           "session cookie the admin API accepts, with a CSRF token for "
                           "changes.")
log = logging.getLogger(__name__)
_SCHEMA = ConsoleSessionSchema()


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(_SCHEMA.dump({"signed_in": False, **body}))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"  # it holds the CSRF token
    return response


def _signed_in(session: ConsoleSession, principal: Principal) -> dict[str, Any]:
    return {"signed_in": True, "key_id": principal.key_id, "role": principal.role,
            "csrf_token": session.csrf_token,
            "expires_at": datetime.fromtimestamp(session.expires_at, UTC)}


def _clear(response: Response) -> Response:
    secure = request.is_secure
    response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True,
                           samesite="Strict")
    return response


@bp.post("/session")
@documented(bp.response(200, ConsoleSessionSchema,
                        description="Signed in: the session cookie is set (Set-Cookie)"),
            bp.errors(*SECURED, _403="The key is not an admin key: the console is for admins"),
            bp.doc(security=[{BEARER: []}]))
def sign_in() -> Response:
    """Sign in to the operator console with an admin key"""
    principal: Principal = g.principal  # a bad key was refused (401) before this view
    if not principal.is_admin:
        raise PermissionDeniedError(
            f"The operator console is for admin keys; this key's role is '{principal.role}'.",
            code="insufficient_permissions")
    sessions = gateway().sessions
    cookie, session = sessions.issue(principal, bearer_token(credentials(request.headers)))
    log.info("console sign-in", extra={"key_id": principal.key_id})
    response = _answer(_signed_in(session, principal))
    secure = request.is_secure
    response.set_cookie(cookie_name(secure), cookie, max_age=sessions.ttl, path="/",
                        secure=secure, httponly=True, samesite="Strict")
    return response


@bp.get("/session")
@documented(bp.response(200, ConsoleSessionSchema,
                        description="The current session, or `signed_in: false` (a cookie "
                                    "that no longer counts is cleared)"),
            bp.errors(503))
def current_session() -> Response:
    """The operator console's current session and its CSRF token"""
    gw = gateway()
    cookie = request.cookies.get(cookie_name(request.is_secure))
    if cookie is None:
        return _answer({})
    gw.sync.maybe_refresh()  # a revocation elsewhere counts here as on the admin API
    try:
        session = gw.sessions.read(cookie)
        principal = gw.sessions.principal(session)
        if not principal.is_admin:
            raise AuthenticationError("The key of this session is no longer an admin key.",
                                      code="insufficient_permissions")
    except AuthenticationError as err:
        return _clear(_answer({"reason": err.message}))
    return _answer(_signed_in(session, principal))


@bp.route("/session", methods=["DELETE"])
@documented(bp.response(204, description="Signed out: the cookie is cleared"),
            bp.errors(_403=f"A valid session's CSRF token is missing from {CSRF_HEADER}"))
def sign_out() -> Response:
    """Sign out of the operator console"""
    gw = gateway()
    cookie = request.cookies.get(cookie_name(request.is_secure))
    if cookie is not None:
        try:
            session: ConsoleSession | None = gw.sessions.read(cookie)
        except AuthenticationError:
            session = None  # expired or not ours: nothing to protect, just clear it
        if session is not None:
            gw.sessions.check_csrf(session, request.headers.get(CSRF_HEADER))
    return _clear(Response(status=204))
