"""Every 4xx/5xx is OpenAI's error envelope with the right status, param and code."""

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.settings import Settings
from tests.conftest import AUTH, chat_body
from tests.openai_spec import assert_valid


def assert_error(resp: Any, status: int, code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.data
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert_valid(body, "ErrorResponse")
    if code is not None:
        assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    return body["error"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": "Basic c2stdGVzdA=="},
    {"Authorization": "Bearer "},
])
@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/mock-fast", "/admin/config",
                                  "/v1/unknown-route"])
def test_protected_paths_need_a_valid_key(client: FlaskClient, headers: dict[str, str],
                                          path: str) -> None:
    err = assert_error(client.get(path, headers=headers), 401)
    assert err["code"] in ("missing_api_key", "invalid_api_key")
    assert "wrong-key" not in err["message"]


def test_chat_needs_a_key(client: FlaskClient) -> None:
    assert_error(client.post("/v1/chat/completions", json=chat_body()), 401, "missing_api_key")


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing_required_parameter"),
    ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "model", "invalid_value"),
    ({"model": "mock-fast"}, "messages", "missing_required_parameter"),
    ({"model": "mock-fast", "messages": []}, "messages", "invalid_value"),
    ({"model": "mock-fast", "messages": "hi"}, "messages", "invalid_value"),
    ({"model": "mock-fast", "messages": [{"content": "x"}]}, "messages[0].role",
     "missing_required_parameter"),
    ({"model": "mock-fast", "messages": [{"role": "robot", "content": "x"}]},
     "messages[0].role", "invalid_value"),
    ({"model": "mock-fast", "messages": [{"role": "user", "content": "a"}, {"role": "user"}]},
     "messages[1].content", "invalid_value"),
    ({"model": "mock-fast", "messages": [{"role": "user", "content": 5}]},
     "messages[0].content", "invalid_value"),
    ({**chat_body(), "stream": "yes"}, "stream", "invalid_value"),
    ({**chat_body(), "stream_options": {"include_usage": 1}}, "stream_options.include_usage",
     "invalid_value"),
    ({**chat_body(), "max_tokens": "10"}, "max_tokens", "invalid_value"),
    ({**chat_body(), "max_tokens": 0}, "max_tokens", "invalid_value"),
    ({**chat_body(), "temperature": "0.5"}, "temperature", "invalid_value"),
    ({**chat_body(), "temperature": 3}, "temperature", "invalid_value"),
    ({**chat_body(), "n": True}, "n", "invalid_value"),
    ({**chat_body(), "stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
])
def test_invalid_fields_name_the_param(client: FlaskClient, body: dict[str, Any], param: str,
                                       code: str) -> None:
    err = assert_error(client.post("/v1/chat/completions", json=body, headers=AUTH), 400, code,
                       param)
    assert param in err["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_bad_json_is_400(client: FlaskClient, raw: bytes) -> None:
    resp = client.post("/v1/chat/completions", data=raw,
                       headers={**AUTH, "Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_json")


def test_non_json_content_type_is_415(client: FlaskClient) -> None:
    resp = client.post("/v1/chat/completions", data="model=x",
                       headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(resp, 415, "unsupported_media_type")


def test_unknown_model_is_404(client: FlaskClient) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body("no-such-model"), headers=AUTH)
    err = assert_error(resp, 404, "model_not_found", "model")
    assert "no-such-model" in err["message"]
    assert_error(client.get("/v1/models/no-such-model", headers=AUTH), 404, "model_not_found",
                 "model")


def test_unknown_route_and_wrong_method(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404, "unknown_url")
    resp = client.get("/v1/chat/completions", headers=AUTH)
    assert_error(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


def test_oversized_body_is_413(make_settings: Any) -> None:
    app = create_app(make_settings(NEUROROUTE_MAX_BODY_BYTES="1024"))
    body = chat_body()
    body["messages"][0]["content"] = "x" * 2048
    resp = app.test_client().post("/v1/chat/completions", json=body, headers=AUTH)
    assert_error(resp, 413, "request_too_large")


def test_unexpected_exception_is_500_without_details(settings: Settings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app: Flask = create_app(settings)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.extensions["neuroroute"].dispatcher, "chat", explode)
    resp = app.test_client().post("/v1/chat/completions", json=chat_body(), headers=AUTH)
    err = assert_error(resp, 500, "internal_error")
    assert "secret internal detail" not in resp.get_data(as_text=True)
    assert "Traceback" not in resp.get_data(as_text=True)
    assert err["type"] == "server_error"


def test_request_id_is_echoed_or_generated(client: FlaskClient) -> None:
    resp = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/health/live").headers["X-Request-ID"]
    assert len(generated) == 32
    # A header that could inject into logs is replaced, not echoed.
    resp = client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.headers["X-Request-ID"] != "bad id\twith spaces"
    # Errors carry it too.
    assert client.get("/v1/models", headers={"X-Request-ID": "r-401"}).headers[
        "X-Request-ID"] == "r-401"
