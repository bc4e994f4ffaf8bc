"""What Gunicorn itself writes on the wire: no ``Server`` header, OpenAI-shaped error pages.

Gunicorn adds ``Server: gunicorn`` to every response in ``Response.default_headers`` (no
setting turns it off), and answers requests it refuses before the app sees them (a request
line over 4094 bytes: 414, a header over 8190 bytes or more than 100 headers: 431, malformed
HTTP: 400) with an HTML page from ``util.write_error``. :func:`install` replaces both, in the
worker process (``post_fork`` in ``gunicorn.conf.py``): the response class that
``gunicorn.http.wsgi.create`` builds is a subclass without the header, and error pages are
the gateway's JSON envelope with the security headers. Gunicorn's own choice of status is
kept. gevent's pywsgi-based workers write neither.
"""

from __future__ import annotations

from typing import Any

import orjson
from gunicorn import util
from gunicorn.http import wsgi

from app.http_headers import API_CSP, SECURITY_HEADERS

_CODES = {400: "invalid_request", 403: "forbidden", 414: "request_uri_too_long",
          417: "expectation_failed", 431: "request_header_fields_too_large",
          500: "internal_error", 501: "not_implemented"}


class ResponseWithoutServerHeader(wsgi.Response):  # type: ignore[misc]  # untyped library
    """Gunicorn's HTTP/1 response, minus ``Server: gunicorn`` (it only helps fingerprinting)."""

    def default_headers(self) -> list[str]:
        headers: list[str] = super().default_headers()
        return [h for h in headers if not h.startswith("Server:")]


def error_page(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response: OpenAI's envelope, then the connection closes."""
    body = orjson.dumps({"error": {
        "message": f"{reason}: {message}" if message else reason,
        "type": "invalid_request_error" if status < 500 else "server_error",
        "param": None, "code": _CODES.get(status, f"http_{status}")}})
    head = [f"HTTP/1.1 {status} {reason}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
            f"Content-Security-Policy: {API_CSP}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, error_page(status_int, reason, mesg))


def install() -> None:
    """Use the response class and the error writer above in this (worker) process."""
    wsgi.Response = ResponseWithoutServerHeader
    util.write_error = _write_error
