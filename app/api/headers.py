"""Response headers for browsers: security headers on every answer, CORS when configured.

CORS is flask-cors (``NEUROROUTE_CORS_ORIGINS``; off by default). The security headers are
three constant headers set in one ``after_request`` hook: flask-talisman would add HTTPS
redirects, session-cookie rules and one CSP for every page, none of which an API behind a
TLS-terminating proxy wants, so it does not fit here.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

from app.http_headers import (
    ALLOWED_HEADERS,
    API_CSP,
    EXPOSED_HEADERS,
    PREFLIGHT_MAX_AGE_S,
    SECURITY_HEADERS,
)
from app.settings import Settings


def openapi_headers(headers: dict[str, tuple[str, str]]) -> dict[str, dict[str, object]]:
    """``headers`` as an OpenAPI response's ``headers`` object."""
    return {name: {"description": text, "schema": {"type": kind}}
            for name, (text, kind) in headers.items()}


def register_browser_headers(app: Flask, settings: Settings) -> None:
    """Security headers on every response; CORS for ``settings.cors_origins``.

    Register before the request hooks that authenticate: a CORS preflight (``OPTIONS`` with
    ``Access-Control-Request-Method``) carries no key by design and is answered here, before
    authentication, rate limits and the handlers run.
    """

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        headers.setdefault("Content-Security-Policy", API_CSP)
        return response

    if not settings.cors_origins:
        return
    CORS(app, origins=list(settings.cors_origins), allow_headers=list(ALLOWED_HEADERS),
         expose_headers=list(EXPOSED_HEADERS), methods=["GET", "POST", "PATCH", "DELETE"],
         supports_credentials=False, max_age=PREFLIGHT_MAX_AGE_S, vary_header=True)

    @app.before_request
    def _answer_preflight() -> Response | None:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return app.make_default_options_response()  # flask-cors adds its headers after
        return None
