"""Gunicorn's own output (app/gunicorn_http.py), in process; tests/e2e/test_browser.py checks
it on the wire of a real Gunicorn."""

from __future__ import annotations

import json
from types import SimpleNamespace

from gunicorn import util
from gunicorn.http import wsgi

from app.gunicorn_http import ResponseWithoutServerHeader, error_page, install


def test_error_page_is_the_envelope_with_security_headers() -> None:
    raw = error_page(414, "URI Too Long", "Request Line is too large (5024 > 4094)")
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 414 URI Too Long"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert headers["X-Content-Type-Options"] == "nosniff" and "Server" not in headers
    error = json.loads(body)["error"]
    assert error["code"] == "request_uri_too_long" and error["type"] == "invalid_request_error"
    server_error = json.loads(error_page(500, "Internal Server Error", "").split(
        b"\r\n\r\n", 1)[1])["error"]
    assert server_error == {"message": "Internal Server Error", "type": "server_error",
                            "param": None, "code": "internal_error"}


def test_responses_carry_no_server_header() -> None:
    req = SimpleNamespace(version=(1, 1), should_close=lambda: False)
    resp = ResponseWithoutServerHeader(req, None, SimpleNamespace())
    resp.status = "200 OK"
    resp.response_length = 0
    headers = resp.default_headers()
    assert headers[0] == "HTTP/1.1 200 OK\r\n"
    assert not any(h.startswith("Server:") for h in headers)
    assert any(h.startswith("Date:") for h in headers)


def test_install_replaces_gunicorns_response_and_error_writer() -> None:
    saved = wsgi.Response, util.write_error
    try:
        install()
        assert wsgi.Response is ResponseWithoutServerHeader
        assert util.write_error is not saved[1]
    finally:
        wsgi.Response, util.write_error = saved
