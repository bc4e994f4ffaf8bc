"""Upstream credentials: the OAuth2 client-credentials token manager and its use by providers."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from flask.testing import FlaskClient

from app import create_app
from app.errors import GatewayError
from app.providers.auth import TokenManager
from app.providers.transport import LeanAdapter
from app.settings import OAuth2Config
from tests.conftest import AUTH, UPSTREAM, SettingsFactory, chat_body
from tests.unit.test_openai_provider import COMPLETION

TOKEN_URL = "http://auth.test/oauth/token"
URL = f"{UPSTREAM}/chat/completions"
CONFIG = OAuth2Config(token_url=TOKEN_URL, client_id="sb-client", client_secret="s3cr3t-value",
                      scope="ai-core", audience="https://api.test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lean_session() -> requests.Session:
    """A session on the providers' transport (as build_session mounts it)."""
    session = requests.Session()
    session.mount("http://", LeanAdapter(pool_maxsize=10))
    return session


def manager(clock: Clock | None = None, config: OAuth2Config = CONFIG) -> TokenManager:
    return TokenManager(config, session=lean_session(), timeout=(1, 1), owner="dep#0",
                        clock=clock or time.monotonic)


def token_answers(*tokens: str, expires_in: int = 3600, delay: float = 0.0) -> list[str]:
    """Serve ``tokens`` in turn from TOKEN_URL; return the list of request bodies seen."""
    seen: list[str] = []
    lock = threading.Lock()

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        if delay:
            time.sleep(delay)  # a slow token endpoint widens the race window
        with lock:
            seen.append(request.body)
            token = tokens[min(len(seen), len(tokens)) - 1]
        return 200, {}, f'{{"access_token": "{token}", "token_type": "bearer", ' \
                        f'"expires_in": {expires_in}}}'

    responses.add_callback(responses.POST, TOKEN_URL, callback=callback)
    return seen


@responses.activate
def test_concurrent_callers_cause_exactly_one_token_request() -> None:
    seen = token_answers("tok-1", delay=0.2)
    tokens = manager()
    barrier = threading.Barrier(200)
    results: list[str] = []

    def call() -> None:
        barrier.wait()
        results.append(tokens.token())

    threads = [threading.Thread(target=call) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 1
    assert results == ["tok-1"] * 200


@responses.activate
def test_token_is_cached_until_shortly_before_expiry() -> None:
    seen = token_answers("tok-1", "tok-2", expires_in=120)
    clock = Clock()
    tokens = manager(clock)
    assert tokens.token() == "tok-1"
    clock.now += 59  # margin: min(60 s, half the lifetime) before the 120 s expiry
    assert tokens.token() == "tok-1"
    clock.now += 2
    assert tokens.token() == "tok-2"
    assert len(seen) == 2


@responses.activate
def test_short_lived_tokens_are_refreshed_at_half_their_lifetime() -> None:
    token_answers("tok-1", "tok-2", expires_in=10)
    clock = Clock()
    tokens = manager(clock)
    assert tokens.token() == "tok-1"
    clock.now += 4.9
    assert tokens.token() == "tok-1"
    clock.now += 0.2
    assert tokens.token() == "tok-2"


@responses.activate
def test_token_request_form_and_client_authentication() -> None:
    seen = token_answers("tok-1")
    manager().token()
    sent = responses.calls[0].request
    assert parse_qs(seen[0]) == {"grant_type": ["client_credentials"], "scope": ["ai-core"],
                                 "audience": ["https://api.test"]}
    expected = base64.b64encode(b"sb-client:s3cr3t-value").decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"

    body_auth = OAuth2Config(token_url=TOKEN_URL, client_id="sb-client",
                             client_secret="s3cr3t-value", client_auth="body")
    manager(config=body_auth).token()
    assert parse_qs(seen[1]) == {"grant_type": ["client_credentials"],
                                 "client_id": ["sb-client"], "client_secret": ["s3cr3t-value"]}
    assert "Authorization" not in responses.calls[1].request.headers


@pytest.mark.parametrize(("answer", "detail"), [
    ({"status": 401, "json": {"error": "invalid_client", "error_description": "s3cr3t-value"}},
     "HTTP 401 (invalid_client)"),
    ({"status": 500, "body": "<html>oops</html>"}, "HTTP 500"),
    ({"status": 200, "json": {"token_type": "bearer"}}, "no access_token"),
    ({"body": requests.ConnectionError("refused")}, "the request failed (ConnectionError)"),
])
@responses.activate
def test_token_endpoint_failures_are_502_without_secrets(answer: dict[str, Any],
                                                         detail: str) -> None:
    responses.post(TOKEN_URL, **answer)
    with pytest.raises(GatewayError) as info:
        manager().token()
    err = info.value
    assert err.status == 502 and err.code == "upstream_auth_error"
    assert detail in err.message and TOKEN_URL in err.message and "dep#0" in err.message
    assert "s3cr3t-value" not in err.message


@responses.activate
def test_a_failure_is_held_briefly_instead_of_hammering_the_token_endpoint() -> None:
    responses.post(TOKEN_URL, status=503)
    clock = Clock()
    tokens = manager(clock)
    for _ in range(5):
        with pytest.raises(GatewayError):
            tokens.token()
    assert len(responses.calls) == 1
    clock.now += 1.5
    with pytest.raises(GatewayError):
        tokens.token()
    assert len(responses.calls) == 2


# --- through a provider ----------------------------------------------------------------------

@pytest.fixture
def oauth_client(make_settings: SettingsFactory) -> FlaskClient:
    settings = make_settings([
        {"name": "core", "provider": "openai", "model": "gpt-test-upstream",
         "api_base": UPSTREAM, "headers": {"AI-Resource-Group": "default"},
         "auth": {"type": "oauth2_client_credentials", "token_url": TOKEN_URL,
                  "client_id": "sb-client", "client_secret": "os.environ/CORE_SECRET"}},
    ], CORE_SECRET="s3cr3t-value")
    app = create_app(settings)
    app.config["TESTING"] = True
    return app.test_client()


@responses.activate
def test_bearer_token_and_static_headers_reach_the_upstream(oauth_client: FlaskClient) -> None:
    token_answers("tok-1")
    responses.post(URL, json=COMPLETION)
    for _ in range(3):
        assert oauth_client.post("/v1/chat/completions", json=chat_body("core"),
                                 headers=AUTH).status_code == 200
    upstream_calls = [c for c in responses.calls if c.request.url == URL]
    assert len(responses.calls) - len(upstream_calls) == 1  # one token for three requests
    for call in upstream_calls:
        assert call.request.headers["Authorization"] == "Bearer tok-1"
        assert call.request.headers["AI-Resource-Group"] == "default"


@pytest.mark.parametrize("stream", [False, True])
@responses.activate
def test_upstream_401_forces_one_refresh_and_one_retry(oauth_client: FlaskClient,
                                                       stream: bool) -> None:
    seen = token_answers("tok-old", "tok-new")
    responses.post(URL, status=401, json={"error": {"message": "token expired"}})
    if stream:
        responses.post(URL, body=b'data: {"choices": []}\n\ndata: [DONE]\n\n',
                       content_type="text/event-stream")
    else:
        responses.post(URL, json=COMPLETION)
    resp = oauth_client.post("/v1/chat/completions", json=chat_body("core", stream=stream),
                             headers=AUTH)
    assert resp.status_code == 200
    upstream = [c.request.headers["Authorization"] for c in responses.calls
                if c.request.url == URL]
    assert upstream == ["Bearer tok-old", "Bearer tok-new"]
    assert len(seen) == 2


@responses.activate
def test_persistent_401_is_retried_once_then_502(oauth_client: FlaskClient) -> None:
    seen = token_answers("tok-1", "tok-2", "tok-3")
    responses.post(URL, status=401, json={"error": {"message": "no access"}})
    resp = oauth_client.post("/v1/chat/completions", json=chat_body("core"), headers=AUTH)
    assert resp.status_code == 502
    assert resp.get_json()["error"]["code"] == "upstream_auth_error"
    assert len([c for c in responses.calls if c.request.url == URL]) == 2
    assert len(seen) == 2


@responses.activate
def test_token_endpoint_down_is_a_502_for_the_client(oauth_client: FlaskClient) -> None:
    responses.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    resp = oauth_client.post("/v1/chat/completions", json=chat_body("core"), headers=AUTH)
    assert resp.status_code == 502
    message = resp.get_json()["error"]["message"]
    assert "access token" in message and "invalid_client" in message
    assert not [c for c in responses.calls if c.request.url == URL]


def test_oauth_secret_is_redacted_in_admin_config(oauth_client: FlaskClient) -> None:
    resp = oauth_client.get("/admin/config", headers=AUTH)
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "s3cr3t-value" not in text
    auth = resp.get_json()["models"][0]["auth"]
    assert auth["client_secret"] == "<redacted: os.environ/CORE_SECRET>"
    assert auth["token_url"] == TOKEN_URL and auth["client_id"] == "sb-client"


def test_token_endpoint_gets_a_short_read_timeout(make_settings: SettingsFactory) -> None:
    from app.providers.auth import OAuth2Credentials
    from app.providers.base import build_provider
    from app.providers.relay import HTTPProvider

    settings = make_settings([{"name": "x", "provider": "vllm", "model": "m",
                               "read_timeout": 600, "connect_timeout": 3,
                               "auth": {"type": "oauth2_client_credentials",
                                        "token_url": TOKEN_URL, "client_id": "a",
                                        "client_secret": "b"}}])
    provider = build_provider(settings.deployments[0], settings=settings)
    assert isinstance(provider, HTTPProvider)
    assert provider.timeout == (3, 600)
    assert isinstance(provider.credentials, OAuth2Credentials)
    assert provider.credentials.manager.timeout == (3, 15.0)


@responses.activate
def test_rejected_credentials_move_the_request_to_another_deployment(make_settings: Any) -> None:
    """A deployment whose upstream rejects the gateway's key is excluded, not retried; a
    healthy deployment of the group answers."""
    bad, good = "http://bad.test/v1", "http://good.test/v1"
    app = create_app(make_settings([
        # Weighted so that the bad deployment is (almost surely) picked first every time.
        {"name": "g", "provider": "openai", "model": "m", "api_base": bad, "api_key": "wrong",
         "weight": 1000},
        {"name": "g", "provider": "openai", "model": "m", "api_base": good, "api_key": "ok"}]))
    responses.post(f"{bad}/chat/completions", status=401, json={
        "error": {"message": "bad key", "type": "x", "param": None, "code": "invalid_api_key"}})
    responses.post(f"{good}/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                     "finish_reason": "stop"}]})
    client = app.test_client()
    for _ in range(6):
        resp = client.post("/v1/chat/completions", headers=AUTH,
                           json={"model": "g", "messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 200 and resp.headers["x-neuroroute-deployment"] == "g#1"
        # At most one attempt on the bad deployment per request: it is never retried.
        assert int(resp.headers["x-neuroroute-attempts"]) <= 2
    assert sum(c.request.url.startswith(bad) for c in responses.calls) >= 5
