"""Response cache: opt-in per model, per-request directives, scoping, streamed replay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from app import create_app
from app.auth.service import Principal
from app.cache import cache_key
from tests.conftest import AUTH, chat_body
from tests.openai_spec import assert_valid
from tests.unit.test_ratelimit import KeyTable

CACHED_MODELS = [
    {"name": "cached", "provider": "mock", "model": "cached", "mock": {"tokens": 6},
     "cache": {"ttl": 60, "scope": "team"}},
    {"name": "shared", "provider": "mock", "model": "shared", "cache": {"scope": "global"}},
    {"name": "plain", "provider": "mock", "model": "plain"},
]


@pytest.fixture
def cclient(make_settings: Any) -> FlaskClient:
    app = create_app(make_settings(CACHED_MODELS))
    app.extensions["neuroroute"].authenticator = KeyTable({
        "sk-a1": Principal("a1", "member", team_id="team-a"),
        "sk-a2": Principal("a2", "member", team_id="team-a"),
        "sk-b": Principal("b", "member", team_id="team-b"),
        "sk-solo": Principal("solo", "member"),
    })
    return app.test_client()


def ask(client: FlaskClient, key: str = "sk-a1", model: str = "cached",
        headers: dict[str, str] | None = None, **body: Any) -> Any:
    with client.post("/v1/chat/completions", json=chat_body(model, **body),
                     headers={"Authorization": f"Bearer {key}", **(headers or {})}) as resp:
        resp.get_data()
        return resp


def test_second_identical_request_is_a_byte_identical_hit(cclient: FlaskClient) -> None:
    first = ask(cclient)
    second = ask(cclient)
    assert first.headers["x-neuroroute-cache"] == "miss"
    assert second.headers["x-neuroroute-cache"] == "hit"
    assert second.data == first.data
    assert second.headers["x-neuroroute-deployment"] == "cached#0"


def test_models_without_a_cache_policy_skip(cclient: FlaskClient) -> None:
    assert ask(cclient, model="plain").headers["x-neuroroute-cache"] == "skip"
    assert ask(cclient, model="plain").headers["x-neuroroute-cache"] == "skip"


def test_teams_never_share_entries_unless_global(cclient: FlaskClient) -> None:
    ask(cclient, "sk-a1")
    assert ask(cclient, "sk-a2").headers["x-neuroroute-cache"] == "hit"  # same team
    assert ask(cclient, "sk-b").headers["x-neuroroute-cache"] == "miss"  # other team
    assert ask(cclient, "sk-solo").headers["x-neuroroute-cache"] == "miss"  # no team: per key
    ask(cclient, "sk-a1", model="shared")
    assert ask(cclient, "sk-b", model="shared").headers["x-neuroroute-cache"] == "hit"


def test_output_changing_parameters_make_different_entries(cclient: FlaskClient) -> None:
    ask(cclient, temperature=0.1)
    assert ask(cclient, temperature=0.7).headers["x-neuroroute-cache"] == "miss"
    assert ask(cclient, temperature=0.1, user="someone").headers["x-neuroroute-cache"] == "hit"
    assert cache_key({"model": "m", "messages": [], "stream": True}, "s") == cache_key(
        {"model": "m", "messages": []}, "s")


def test_cache_control_directives(cclient: FlaskClient) -> None:
    ask(cclient)
    no_cache = ask(cclient, headers={"Cache-Control": "no-cache"})
    assert no_cache.headers["x-neuroroute-cache"] == "miss"
    no_store = ask(cclient, headers={"Cache-Control": "no-store"})
    assert no_store.headers["x-neuroroute-cache"] == "skip"
    assert ask(cclient).headers["x-neuroroute-cache"] == "hit"


def test_streamed_hit_replays_a_valid_sse_stream(cclient: FlaskClient) -> None:
    stored = ask(cclient).get_json()
    replay = ask(cclient, stream=True, stream_options={"include_usage": True})
    assert replay.headers["x-neuroroute-cache"] == "hit"
    assert replay.mimetype == "text/event-stream"
    events = [e.removeprefix(b"data: ") for e in replay.data.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == stored["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == stored["usage"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


def test_unreachable_redis_means_skip_not_error(make_settings: Any) -> None:
    app = create_app(make_settings(CACHED_MODELS, NEUROROUTE_REDIS_URL="redis://127.0.0.1:1/0"))
    client = app.test_client()
    for _ in range(2):
        resp = ask(client, key=AUTH["Authorization"].removeprefix("Bearer "))
        assert resp.status_code == 200
        assert resp.headers["x-neuroroute-cache"] == "skip"


def test_model_list_is_cached_briefly(client: FlaskClient) -> None:
    first = client.get("/v1/models", headers=AUTH).get_json()
    gw = client.application.extensions["neuroroute"]
    assert gw.model_lists.get(None) == first


def test_a_stored_deployment_with_a_cache_policy_is_cached(client: FlaskClient) -> None:
    """The admin API accepts `cache` on a stored deployment (201): it is honoured."""
    created = client.post("/admin/deployments", headers=AUTH, json={
        "id": "stored-cached", "name": "stored-cached", "provider": "mock",
        "model": "stored-cached", "cache": {"ttl": 60, "scope": "global"}})
    assert created.status_code == 201
    body = {"model": "stored-cached", "messages": [{"role": "user", "content": "same"}]}
    first = client.post("/v1/chat/completions", headers=AUTH, json=body)
    second = client.post("/v1/chat/completions", headers=AUTH, json=body)
    assert first.headers["x-neuroroute-cache"] == "miss"
    assert second.headers["x-neuroroute-cache"] == "hit"
    assert second.data == first.data
