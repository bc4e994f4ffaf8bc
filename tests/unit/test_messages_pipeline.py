"""``/v1/messages`` goes through the chat pipeline: allowlists, limits, budgets, cache, usage,
routing and fallbacks apply as they do to chat completions, with Anthropic's error shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth.service import Principal
from app.settings import load_settings
from tests.conftest import AUTH, MASTER_KEY
from tests.unit.test_ratelimit import KeyTable
from tests.unit.test_usage_db import flush, new_key, rows

ANTHROPIC = "http://anthropic.test/v1"
MODELS = [
    {"name": "priced", "provider": "mock", "model": "priced", "mock": {"tokens": 5},
     "input_cost_per_mtok": 1000.0, "output_cost_per_mtok": 1000.0},
    {"name": "cached", "provider": "mock", "model": "cached", "mock": {"tokens": 4},
     "cache": {"ttl": 60}},
    {"name": "claude", "provider": "anthropic", "model": "claude-x", "api_base": ANTHROPIC,
     "api_key": "sk-ant"},
    {"name": "backup", "provider": "mock", "model": "backup", "mock": {"tokens": 3}},
    {"name": "embedder", "provider": "mock", "model": "e", "endpoints": ["embeddings"]},
]
ROUTING = {"groups": {"claude": {"fallbacks": ["backup"]}}}
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def messages_app(tmp_path: Path, database_url: str) -> Flask:
    path = tmp_path / "messages.yaml"
    path.write_text(yaml.safe_dump({"models": MODELS, **ROUTING}))
    return create_app(load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                                     "NEUROROUTE_CONFIG": str(path),
                                     "NEUROROUTE_DATABASE_URL": database_url}))


def message(client: FlaskClient, key: str | None = None, **body: Any) -> Any:
    body = {"model": "priced", "max_tokens": 50, "messages": HELLO, **body}
    headers = {"x-api-key": key} if key else AUTH
    with client.post("/v1/messages", json=body, headers={**headers,
                                                          "anthropic-version": "2023-06-01"}
                     ) as resp:
        resp.get_data()
        return resp


def test_usage_and_cost_are_recorded_as_the_messages_api(messages_app: Flask) -> None:
    client = messages_app.test_client()
    key = new_key(client)
    answer = message(client, key["key"])
    assert answer.status_code == 200 and answer.get_json()["type"] == "message"
    message(client, key["key"], stream=True)
    flush(messages_app)
    written = rows(messages_app)
    assert [(r.api, r.stream, r.completion_tokens) for r in written] == [
        ("messages", False, 5), ("messages", True, 5)]
    assert written[0].cost == pytest.approx(written[0].total_tokens * 1000 / 1e6)
    assert float(answer.headers["x-neuroroute-cost"]) == pytest.approx(written[0].cost)


def test_budget_spent_is_a_billing_error(messages_app: Flask) -> None:
    client = messages_app.test_client()
    key = new_key(client, max_budget=0.0)
    refused = message(client, key["key"])
    assert refused.status_code == 402  # the anthropic SDK's PaymentRequiredError, no retry
    assert refused.get_json()["error"]["type"] == "billing_error"


def test_allowlist_and_rate_limit(make_settings: Any) -> None:
    app = create_app(make_settings(MODELS))
    app.extensions["neuroroute"].authenticator = KeyTable({
        "sk-only-backup": Principal("a", "member", allowed_models=frozenset({"backup"})),
        "sk-rpm": Principal("b", "member", rpm_limit=1),
    })
    client = app.test_client()
    hidden = message(client, "sk-only-backup")
    assert hidden.status_code == 404
    assert hidden.get_json()["error"]["type"] == "not_found_error"
    assert message(client, "sk-only-backup", model="backup").status_code == 200
    assert message(client, "sk-rpm").status_code == 200
    limited = message(client, "sk-rpm")
    assert limited.status_code == 429
    assert limited.get_json() == {"type": "error", "error": {
        "type": "rate_limit_error", "message": limited.get_json()["error"]["message"]}}
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["x-ratelimit-limit-requests"] == "1"


def test_non_stream_answers_are_cached_per_api(messages_app: Flask) -> None:
    client = messages_app.test_client()
    first = message(client, model="cached")
    second = message(client, model="cached")
    assert (first.headers["x-neuroroute-cache"], second.headers["x-neuroroute-cache"]) == (
        "miss", "hit")
    assert second.data == first.data and second.get_json()["type"] == "message"
    # the same question through chat completions is its own entry, in chat's shape
    chat = client.post("/v1/chat/completions", headers=AUTH, json={
        "model": "cached", "messages": HELLO, "max_completion_tokens": 50})
    assert chat.headers["x-neuroroute-cache"] == "miss"
    assert chat.get_json()["object"] == "chat.completion"
    # a stream of another API than chat neither reads nor fills the cache
    assert message(client, model="cached", stream=True).headers["x-neuroroute-cache"] == "skip"


@responses.activate
def test_falls_back_from_anthropic_to_a_translated_deployment(messages_app: Flask) -> None:
    responses.post(f"{ANTHROPIC}/messages", status=529, json={
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    answer = message(messages_app.test_client(), model="claude")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["x-neuroroute-deployment"] == "backup#0"
    body = answer.get_json()
    assert body["type"] == "message" and body["model"] == "claude"
    assert body["usage"]["output_tokens"] == 3
    assert json.loads(responses.calls[0].request.body)["model"] == "claude-x"


@responses.activate
def test_upstream_errors_in_anthropic_shape_without_fallback(messages_app: Flask) -> None:
    responses.post(f"{ANTHROPIC}/messages", status=400, json={
        "type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}})
    answer = message(messages_app.test_client(), model="claude")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["type"] == "invalid_request_error"
    assert "bad thing" in answer.get_json()["error"]["message"]


def test_a_model_that_serves_no_chat_is_refused(messages_app: Flask) -> None:
    refused = message(messages_app.test_client(), model="embedder")
    assert refused.status_code == 400
    assert "does not serve chat" in refused.get_json()["error"]["message"]


def test_invalid_bodies_name_the_field(messages_app: Flask) -> None:
    client = messages_app.test_client()
    missing = message(client, max_tokens=None)
    assert missing.status_code == 400 and "max_tokens" in missing.get_json()["error"]["message"]
    hosted = message(client, tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert hosted.status_code == 400 and "tools" in hosted.get_json()["error"]["message"]
    with client.post("/v1/messages", data="{", headers={**AUTH,
                                                         "Content-Type": "application/json"}
                     ) as resp:
        assert resp.status_code == 400
        assert resp.get_json()["error"]["type"] == "invalid_request_error"
    assert client.post("/v1/messages", json={}).status_code == 401
    unknown_url = client.post("/v1/messages/nope", headers=AUTH, json={})
    assert unknown_url.status_code == 404
    assert unknown_url.get_json()["type"] == "error"
