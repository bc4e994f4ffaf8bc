"""Response headers for browsers: security headers on every answer, CORS when configured,
and the one list of the gateway's own response headers (documented, and exposed to
cross-origin scripts).

CORS is flask-cors (``NEUROROUTE_CORS_ORIGINS``; off by default). The security headers are
three constant headers set in one ``after_request`` hook: flask-talisman would add HTTPS
redirects, session-cookie rules and one CSP for every page, none of which an API behind a
TLS-terminating proxy wants, so it does not fit here.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

from app.settings import Settings

REQUEST_ID = "X-Request-ID"
WORKER = "X-NeuroRoute-Worker"
# The gateway's response headers: name -> (description, OpenAPI type).
ROUTING_HEADERS: dict[str, tuple[str, str]] = {
    "x-neuroroute-deployment": ("The deployment that served the request", "string"),
    "x-neuroroute-attempts": ("Upstream attempts made (retries + fallbacks + 1)", "integer"),
    "x-neuroroute-route": ("How it was routed, e.g. `model=gpt-4o; fallback=gpt-4o-mini` or "
                           "`auto; tier=medium; reason=code; tokens=812`", "string"),
}
RATE_LIMIT_HEADERS: dict[str, tuple[str, str]] = {
    "x-ratelimit-limit-requests": ("Requests per minute of the key (when limited)", "string"),
    "x-ratelimit-remaining-requests": ("Requests left in the window", "string"),
    "x-ratelimit-reset-requests": ("Time until the window resets, e.g. `12.5s`", "string"),
    "x-ratelimit-limit-tokens": ("Tokens per minute of the key (when limited)", "string"),
    "x-ratelimit-remaining-tokens": ("Tokens left in the window", "string"),
    "x-ratelimit-reset-tokens": ("Time until the window resets", "string"),
}
CHAT_HEADERS: dict[str, tuple[str, str]] = {
    REQUEST_ID: ("The caller's id, or a new one; also sent upstream", "string"),
    "x-neuroroute-cache": ("Response cache: hit | miss | skip", "string"),
    "x-neuroroute-cost": ("Cost in USD (non-stream), or `unknown` without a price", "string"),
    "x-neuroroute-overhead-ms": ("The gateway's own time before the answer started",
                                 "string"),
    **RATE_LIMIT_HEADERS,
}
RETRY_AFTER = "Retry-After"
# What a script on an allowed origin may read (CORS safelists only a few plain headers).
EXPOSED_HEADERS = (REQUEST_ID, WORKER, RETRY_AFTER, *ROUTING_HEADERS, *CHAT_HEADERS)
# What a browser may send: the key, JSON bodies, and the gateway's own request headers.
ALLOWED_HEADERS = ("Authorization", "Content-Type", REQUEST_ID, "x-neuroroute-fallbacks",
                   "Cache-Control")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a JSON answer is never sniffed into HTML
    "Referrer-Policy": "no-referrer",
}
# /docs: Swagger UI's own files only (no CDN), its inline styles and SVG data: images, and
# calls back to this origin for /openapi.json and "Try it out".
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Everything else is data: nothing in it may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
PREFLIGHT_MAX_AGE_S = 600


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
