"""Per-key RPM/TPM, per-IP failed-auth limit, OpenAI rate-limit headers, Redis fallback."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.auth.service import Principal
from app.errors import AuthenticationError
from tests.conftest import AUTH, MASTER_KEY, chat_body
from tests.openai_spec import assert_valid


class KeyTable:
    """A stand-in authenticator: bearer token -> principal."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    def authenticate(self, authorization: str | None) -> Principal:
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.principals:
            raise AuthenticationError("Incorrect API key provided.")
        return self.principals[token]


def client_with(make_settings: Any, principals: dict[str, Principal] | None = None,
                **env: str) -> FlaskClient:
    app = create_app(make_settings(**env))
    if principals is not None:
        app.extensions["neuroroute"].authenticator = KeyTable(principals)
    return app.test_client()


def post(client: FlaskClient, key: str = MASTER_KEY, **body: Any) -> Any:
    with client.post("/v1/chat/completions", json=chat_body(**body),
                     headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp


def test_no_limits_by_default(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    resp = post(client)
    assert resp.status_code == 200
    assert "x-ratelimit-limit-requests" not in resp.headers
    # No limit configured must not mean an error logged on every request.
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_requests_per_minute_exact_with_openai_headers(make_settings: Any) -> None:
    client = client_with(make_settings, NEUROROUTE_DEFAULT_RPM="3")
    remaining = []
    for _ in range(3):
        resp = post(client)
        assert resp.status_code == 200
        assert resp.headers["x-ratelimit-limit-requests"] == "3"
        assert resp.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(resp.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    refused = post(client)
    assert refused.status_code == 429
    body = refused.get_json()
    assert_valid(body, "ErrorResponse")
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["type"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_per_key_overrides_and_independent_counters(make_settings: Any) -> None:
    client = client_with(make_settings, {
        "sk-a": Principal("a", "member", rpm_limit=1),
        "sk-b": Principal("b", "member"),  # falls back to the default of 2
    }, NEUROROUTE_DEFAULT_RPM="2")
    assert post(client, "sk-a").status_code == 200
    assert post(client, "sk-a").status_code == 429
    assert [post(client, "sk-b").status_code for _ in range(3)] == [200, 200, 429]


def test_tokens_per_minute_charges_estimate_plus_max_tokens(make_settings: Any) -> None:
    client = client_with(make_settings, {"sk-t": Principal("t", "member", tpm_limit=40)})
    first = post(client, "sk-t", max_tokens=20)  # ~10 prompt tokens + 20 requested
    assert first.status_code == 200
    used = 40 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert 20 < used < 40
    second = post(client, "sk-t", max_tokens=20)
    assert second.status_code == 429
    assert "tokens" in second.get_json()["error"]["message"]


def test_tokens_corrected_upwards_after_the_response(make_settings: Any) -> None:
    client = client_with(make_settings, {"sk-t": Principal("t", "member", tpm_limit=1000)})
    # No max_tokens: only the prompt is charged up front, the 5 completion tokens after.
    first = post(client, "sk-t")
    before_correction = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
    second = post(client, "sk-t")
    total_charged = 1000 - int(second.headers["x-ratelimit-remaining-tokens"])
    assert total_charged == 2 * before_correction + 5  # first request's 5 were added later


def test_failed_authentication_is_limited_per_address(make_settings: Any) -> None:
    client = client_with(make_settings, NEUROROUTE_AUTH_FAILURE_LIMIT="3/minute")
    bad = {"Authorization": "Bearer wrong"}
    statuses = [client.get("/v1/models", headers=bad).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = client.get("/v1/models", headers=bad)
    assert refused.get_json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    # A valid key from the same address is not affected; another address is not either.
    assert client.get("/v1/models", headers=AUTH).status_code == 200
    other = client.get("/v1/models", headers=bad, environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert other.status_code == 401


def test_known_but_revoked_keys_are_not_locked_out(make_settings: Any) -> None:
    class Revoked(KeyTable):
        def authenticate(self, authorization: str | None) -> Principal:
            raise AuthenticationError("This API key has been revoked.", code="api_key_revoked")

    client = client_with(make_settings, NEUROROUTE_AUTH_FAILURE_LIMIT="2/minute")
    client.application.extensions["neuroroute"].authenticator = Revoked({})
    codes = [client.get("/v1/models", headers=AUTH).get_json()["error"]["code"]
             for _ in range(5)]
    assert codes == ["api_key_revoked"] * 5


def test_unreachable_redis_falls_back_to_memory_limits(make_settings: Any) -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    client = client_with(make_settings, NEUROROUTE_REDIS_URL="redis://127.0.0.1:1/0",
                         NEUROROUTE_DEFAULT_RPM="2")
    statuses = [post(client).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.application.extensions["neuroroute"].admission.backend == "redis-unavailable"
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"]["rate_limit_storage"]["status"] == "degraded"


@pytest.mark.parametrize(("env", "message"), [
    ({"NEUROROUTE_REDIS_URL": "http://x"}, "NEUROROUTE_REDIS_URL"),
    ({"NEUROROUTE_RATELIMIT_STRATEGY": "leaky"}, "unknown strategy"),
    ({"NEUROROUTE_AUTH_FAILURE_LIMIT": "lots"}, "not a rate limit"),
    ({"NEUROROUTE_DEFAULT_RPM": "-3"}, "NEUROROUTE_DEFAULT_RPM"),
])
def test_limit_settings_are_validated(make_settings: Any, env: dict[str, str],
                                      message: str) -> None:
    from app.settings import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_settings(**env)


def test_a_refusal_for_requests_carries_the_token_headers_too(make_settings: Any) -> None:
    client = client_with(make_settings, {"sk-b": Principal("b", "member", rpm_limit=1,
                                                           tpm_limit=1000)})
    assert post(client, "sk-b").status_code == 200
    refused = post(client, "sk-b")
    assert refused.status_code == 429
    for kind in ("requests", "tokens"):
        for name in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{name}-{kind}" in refused.headers
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # the refused request charged no tokens: the same as after the first request
    assert int(refused.headers["x-ratelimit-remaining-tokens"]) < 1000


def test_a_revoked_key_from_an_address_over_the_guess_limit_still_gets_its_401(
        make_settings: Any) -> None:
    class Keys(KeyTable):
        def authenticate(self, authorization: str | None) -> Principal:
            if authorization == "Bearer sk-revoked":
                raise AuthenticationError("This API key has been revoked.",
                                          code="api_key_revoked")
            return super().authenticate(authorization)

    client = client_with(make_settings, NEUROROUTE_AUTH_FAILURE_LIMIT="2/minute")
    client.application.extensions["neuroroute"].authenticator = Keys({})
    bad = {"Authorization": "Bearer sk-guess"}
    assert [client.get("/v1/models", headers=bad).status_code for _ in range(3)] == \
        [401, 401, 429]
    resp = client.get("/v1/models", headers={"Authorization": "Bearer sk-revoked"})
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "api_key_revoked"
