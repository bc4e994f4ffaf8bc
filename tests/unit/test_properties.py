"""Property-based tests (hypothesis) of the chat and admin bodies, through the app built by
the factory and its test client, with a mock model only (no network).

Properties: the chat fast path only ever says "valid" for bodies the schema accepts; the HTTP
answer follows the schema's verdict (200, or 400 naming the schema's first invalid field);
no body, however hostile, is a 5xx, and every error is OpenAI's envelope; integers of any
size are either stored exactly or refused naming their field.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema

from app.schemas.chat import ChatCompletionRequestSchema, is_plainly_valid
from app.schemas.common import INT32_MAX, INT64_MAX, first_error
from tests.conftest import AUTH

SCALARS = (st.none() | st.booleans() | st.integers() | st.text(max_size=12)
           | st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
# Integers around every bound the schemas use, and far beyond 64 bits.
EDGES = st.sampled_from([0, 1, -1, 2, 20, 21, 128, 129, 2**31 - 1, 2**31, INT64_MAX,
                         INT64_MAX + 1, -(2**63), -(2**63) - 1, 10**22, 2.0, 1.5])
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function",
                         "robot"])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={"content": st.none() | st.text(max_size=20) | st.lists(JSON, max_size=2),
              "name": SCALARS, "tool_call_id": SCALARS, "tool_calls": JSON})
CHAT_FIELDS = ("stream", "stream_options", "max_tokens", "max_completion_tokens", "n",
               "temperature", "top_p", "presence_penalty", "frequency_penalty", "stop", "seed",
               "user", "logprobs", "top_logprobs", "tools", "tool_choice", "response_format",
               "an_unknown_parameter")
# A valid body with up to three fields set to edge or arbitrary values, or its model or
# messages replaced: near the boundary between valid and invalid, where mistakes hide.
CHAT_BODY = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries({
        "model": st.just("mock-fast") | SCALARS,
        "messages": st.just([{"role": "user", "content": "Hi"}])
        | st.lists(MESSAGE, min_size=0, max_size=3) | JSON}),
    st.dictionaries(st.sampled_from(CHAT_FIELDS), EDGES | SCALARS | JSON, max_size=3))


@given(extra=st.dictionaries(st.sampled_from(CHAT_FIELDS[:13]), EDGES | SCALARS, max_size=2),
       messages=st.just([{"role": "user", "content": "Hi"}]) | st.lists(MESSAGE, max_size=2))
@settings(max_examples=settings.default.max_examples * 10)
def test_fast_path_never_accepts_what_the_schema_refuses(extra: dict[str, Any],
                                                          messages: Any) -> None:
    """Cheap (no HTTP), so ten times the examples, on the fields the fast path checks."""
    body = {"model": "mock-fast", "messages": messages, **extra}
    if is_plainly_valid(body):
        assert Schema.validate(ChatCompletionRequestSchema(), body) == {}, body


def assert_envelope(resp: Any) -> dict[str, Any]:
    assert resp.status_code < 500, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    return error


@given(body=CHAT_BODY)
def test_chat_answers_follow_the_schema(client: FlaskClient, body: dict[str, Any]) -> None:
    errors = Schema.validate(ChatCompletionRequestSchema(), body)  # the schema alone, no fast path
    if is_plainly_valid(body):
        assert errors == {}, (body, errors)
    resp = client.post("/v1/chat/completions", json=body, headers=AUTH)
    if not errors and body["model"] == "mock-fast":
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return
    error = assert_envelope(resp)
    if errors:
        assert resp.status_code == 400 and error["param"] == (first_error(errors)[0] or None)
    else:
        assert resp.status_code == 404 and error["code"] == "model_not_found"


ADMIN_BODIES = {
    "/admin/keys": {"name": st.text(max_size=8), "role": st.sampled_from(["admin", "member"]),
                    "allowed_models": JSON, "rpm_limit": EDGES, "tpm_limit": EDGES,
                    "max_budget": EDGES | JSON, "budget_period": JSON, "expires_at": JSON,
                    "disabled": JSON, "user_id": JSON},
    "/admin/users": {"email": st.emails() | JSON, "name": JSON, "role": JSON,
                     "max_budget": EDGES, "team_id": JSON},
    "/admin/teams": {"name": st.text(max_size=8) | JSON, "max_budget": EDGES | JSON},
    "/admin/deployments": {"name": st.text(max_size=8), "provider": st.sampled_from(
        ["mock", "openai", "vllm", "anthropic", "nope"]), "model": st.text(max_size=8),
        "api_base": st.sampled_from(["http://127.0.0.1:9/v1", "ftp://x"]) | JSON,
        "rpm": EDGES, "tpm": EDGES, "max_input_tokens": EDGES, "weight": EDGES | JSON,
        "cache": st.fixed_dictionaries({}, optional={"ttl": EDGES, "scope": JSON}),
        "mock": st.fixed_dictionaries({}, optional={"tokens": EDGES, "latency_ms": EDGES}),
        "headers": JSON, "an_unknown_field": JSON},
}


@given(data=st.data(), path=st.sampled_from(sorted(ADMIN_BODIES)))
def test_admin_bodies_are_created_or_refused_naming_a_field(client: FlaskClient,
                                                            data: st.DataObject,
                                                            path: str) -> None:
    body = data.draw(st.fixed_dictionaries({}, optional=ADMIN_BODIES[path]))
    resp = client.post(path, json=body, headers=AUTH)
    if resp.status_code == 201:
        return
    error = assert_envelope(resp)
    assert resp.status_code in (400, 409), (resp.status_code, error)
    if resp.status_code == 400:  # the field named is one sent, or a required one left out
        top = (error["param"] or "").split(".")[0].split("[")[0]
        assert top in body or error["code"] == "missing_required_parameter", (body, error)


@given(value=st.integers() | EDGES, field=st.sampled_from(["rpm_limit", "tpm_limit"]))
def test_integers_of_any_size_are_stored_exactly_or_refused(client: FlaskClient, value: Any,
                                                            field: str) -> None:
    resp = client.post("/admin/keys", json={"name": "k", field: value}, headers=AUTH)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT32_MAX:
        assert resp.status_code == 201 and resp.get_json()[field] == value
    elif isinstance(value, float) and value.is_integer() and 1 <= value <= INT32_MAX:
        assert resp.status_code == 201 and resp.get_json()[field] == int(value)  # JSON's 2.0 == 2
    else:
        assert resp.status_code == 400 and assert_envelope(resp)["param"] == field
