"""Integers beyond 64 bits, NUL characters and other values the databases cannot hold: a 400
naming the field, never a 500 (on SQLite here, PostgreSQL in tests/integration)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.schemas.chat import MAX_OUTPUT_TOKENS, ChatCompletionRequestSchema, is_plainly_valid
from app.schemas.common import INT32_MAX, INT64_MAX, INT64_MIN
from tests.conftest import AUTH, chat_body

BIG = 10**22  # 22 digits


def assert_400(resp: Any, param: str) -> dict[str, Any]:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    error: dict[str, Any] = resp.get_json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    return error


@pytest.mark.parametrize(("field", "value"), [
    ("tpm_limit", 2**63), ("rpm_limit", 10**30), ("rpm_limit", -(2**64)),
    ("tpm_limit", INT32_MAX + 1),
])
def test_admin_body_integers_stay_within_their_columns(client: FlaskClient, field: str,
                                                       value: int) -> None:
    error = assert_400(client.post("/admin/keys", json={"name": "k", field: value},
                                   headers=AUTH), field)
    assert str(INT32_MAX) in error["message"]  # the real bound, not a misleading message
    key = client.post("/admin/keys", json={"name": "k", field: INT32_MAX}, headers=AUTH)
    assert key.status_code == 201 and key.get_json()[field] == INT32_MAX
    patched = client.patch(f"/admin/keys/{key.get_json()['id']}", json={field: value},
                           headers=AUTH)
    assert_400(patched, field)


@pytest.mark.parametrize("query", [f"/admin/audit?after={BIG}", f"/admin/keys?limit={BIG}",
                                   "/admin/audit?after=-1", f"/admin/users?limit=-{BIG}"])
def test_query_integers_stay_within_bounds(client: FlaskClient, query: str) -> None:
    assert_400(client.get(query, headers=AUTH), query.split("?")[1].split("=")[0])


def test_deployment_integers_and_floats_stay_storable(client: FlaskClient) -> None:
    base = {"name": "d", "provider": "mock", "model": "m"}
    for field, value in (("rpm", 2**63), ("max_input_tokens", BIG), ("weight", 1e300),
                         ("connect_timeout", 1e300), ("input_cost_per_mtok", 1e300)):
        assert_400(client.post("/admin/deployments", json={**base, field: value},
                               headers=AUTH), field)
    assert_400(client.post("/admin/deployments", json={**base, "cache": {"ttl": 2**64}},
                           headers=AUTH), "cache.ttl")


@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", 2**63), ("max_tokens", MAX_OUTPUT_TOKENS + 1),
    ("max_completion_tokens", BIG), ("seed", INT64_MAX + 1), ("seed", INT64_MIN - 1),
    ("n", BIG), ("top_logprobs", BIG),
])
def test_chat_integers_stay_within_bounds(client: FlaskClient, field: str, value: int) -> None:
    body = chat_body(**{field: value})
    assert not is_plainly_valid(body)  # the fast path defers to the schema...
    assert_400(client.post("/v1/chat/completions", json=body, headers=AUTH), field)  # ...: 400


def test_chat_accepts_the_bounds_themselves(client: FlaskClient) -> None:
    body = chat_body(max_tokens=MAX_OUTPUT_TOKENS, seed=INT64_MIN)
    assert is_plainly_valid(body) and ChatCompletionRequestSchema().validate(body) == {}
    assert client.post("/v1/chat/completions", json=body, headers=AUTH).status_code == 200


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/admin/teams", {"name": "a\x00b"}, "name"),
    ("/admin/keys", {"name": "k", "allowed_models": ["m\x00"]}, "allowed_models[0]"),
    ("/admin/deployments", {"name": "d", "provider": "mock", "model": "m\x00"}, "model"),
    ("/admin/deployments", {"name": "d", "provider": "openai", "model": "m",
                            "api_base": "http://h.test", "headers": {"X": "\x00"}},
     "headers.X.value"),
])
def test_nul_characters_are_refused(client: FlaskClient, path: str, body: dict[str, Any],
                                    param: str) -> None:
    error = assert_400(client.post(path, json=body, headers=AUTH), param)
    assert "NUL" in error["message"]
    assert_400(client.get("/admin/teams?name=a%00b", headers=AUTH), "name")


def test_expiry_beyond_year_9999_in_utc_is_a_400(client: FlaskClient) -> None:
    body = {"name": "k", "expires_at": "9999-12-31T23:59:59-05:00"}
    assert_400(client.post("/admin/keys", json=body, headers=AUTH), "expires_at")
