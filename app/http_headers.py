"""The gateway's response headers, in one place: the names it sets (documented in the
OpenAPI document and exposed to cross-origin scripts) and the security headers of every
answer, Gunicorn's own error pages included. Constants only: Gunicorn's worker imports this
before gevent patches the standard library.
"""

from __future__ import annotations

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
EXPOSED_HEADERS = tuple(dict.fromkeys((REQUEST_ID, WORKER, RETRY_AFTER, *ROUTING_HEADERS,
                                       *CHAT_HEADERS)))
# What a browser may send: the key, JSON bodies, and the gateway's own request headers.
ALLOWED_HEADERS = ("Authorization", "Content-Type", REQUEST_ID, "x-neuroroute-fallbacks",
                   "Cache-Control",
                   # Anthropic's clients (the Messages API): their key, version and betas
                   "x-api-key", "anthropic-version", "anthropic-beta",
                   "anthropic-dangerous-direct-browser-access")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a JSON answer is never sniffed into HTML
    "Referrer-Policy": "no-referrer",
}
# /docs: Swagger UI's own files only (no CDN), its inline styles and SVG data: images, and
# calls back to this origin for /openapi.json and "Try it out".
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# /ui, the operator console: its own scripts, styles and images, fetch to this origin; no
# inline script or style, no form posts, no framing.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
# Everything else is data: nothing in it may load, run or be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
PREFLIGHT_MAX_AGE_S = 600
