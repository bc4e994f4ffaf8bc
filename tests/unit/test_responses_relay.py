"""``/v1/responses`` to upstreams, in process (``responses`` mocks them): the stateless relay
to a deployment that speaks the API, fallbacks between kinds, the response cache, and
storing what a stream ended with."""

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
from app.settings import load_settings
from bench.mock_responses import events as native_events
from bench.mock_responses import response_object
from tests import anthropic_fixtures as anthropic
from tests.conftest import AUTH, MASTER_KEY, UPSTREAM
from tests.unit.test_openai_provider import COMPLETION, chunk, sse
from tests.unit.test_responses_api import create, events

ANTHROPIC = "http://anthropic.test/v1"
NATIVE = f"{UPSTREAM}/responses"
CHAT = f"{UPSTREAM}/chat/completions"
MODELS: list[dict[str, Any]] = [
    {"name": "native", "provider": "openai", "model": "gpt-native", "api_base": UPSTREAM,
     "api_key": "sk-up", "responses_api": True},
    {"name": "chat", "provider": "openai", "model": "gpt-chat", "api_base": UPSTREAM},
    {"name": "azure", "provider": "azure", "model": "gpt-az", "api_base": "http://az.test",
     "api_version": "2025-04-01-preview", "api_key": "az-key", "responses_api": True},
    {"name": "cached", "provider": "mock", "model": "mock-c", "cache": {"ttl": 60}},
    {"name": "claude", "provider": "anthropic", "model": "claude-x", "api_base": ANTHROPIC,
     "api_key": "sk-ant"},
]
ROUTING = {"router_settings": {"retries": 0}, "groups": {"native": {"fallbacks": ["chat"]}}}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Flask:
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, **ROUTING}))
    app = create_app(load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                                    "NEUROROUTE_CONFIG": str(config),
                                    "NEUROROUTE_DATABASE_URL": database_url}))
    app.config["TESTING"] = True
    return app


def upstream_body(index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(responses.calls[index].request.body)
    return body


def native_answer(request: Any) -> tuple[int, dict[str, str], str]:
    """The stateless mock's answer to what the gateway sent (object or event stream)."""
    body = json.loads(request.body)
    answer = response_object(body, 4)
    if body.get("stream"):
        return 200, {"Content-Type": "text/event-stream"}, b"".join(
            native_events(answer)).decode()
    return 200, {}, json.dumps(answer)


@responses.activate
def test_relayed_statelessly_with_the_conversation(client: FlaskClient) -> None:
    responses.add_callback(responses.POST, NATIVE, callback=native_answer)
    first = create(client, model="native", input="Hi", tools=[
        {"type": "function", "name": "lookup", "parameters": {"type": "object"}}])
    call = first["output"][0]
    assert (call["type"], upstream_body()["store"], upstream_body()["input"]) == (
        "function_call", False, "Hi")
    assert (first["store"], first["previous_response_id"]) == (True, None)
    reasoning = [{"type": "reasoning", "id": "rs_1", "summary": []},
                 {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "e"}]
    second = create(client, model="native", previous_response_id=first["id"], input=[
        *reasoning, {"type": "function_call_output", "call_id": call["call_id"],
                     "output": "found"}])
    sent = upstream_body()
    assert "previous_response_id" not in sent and sent["store"] is False
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"type": "function_call", "call_id": call["call_id"], "name": "lookup",
         "arguments": call["arguments"]},
        reasoning[1],  # encrypted reasoning travels; a bare reference cannot, and is dropped
        {"type": "function_call_output", "call_id": call["call_id"], "output": "found"}]
    assert (second["previous_response_id"], second["store"]) == (first["id"], True)
    assert second["output"][0]["content"][0]["text"] == "The tool said: found"
    assert client.get(f"/v1/responses/{second['id']}", headers=AUTH).get_json() == second
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-up"


@responses.activate
def test_a_relayed_stream_says_what_the_gateway_keeps(client: FlaskClient) -> None:
    responses.add_callback(responses.POST, NATIVE, callback=native_answer)
    first = create(client, model="native")
    streamed = events(client, model="native", previous_response_id=first["id"])
    lifecycle = [e["response"] for e in streamed if "response" in e]
    assert [e["type"] for e in streamed if "response" in e] == [
        "response.created", "response.in_progress", "response.completed"]
    assert all((r["store"], r["previous_response_id"]) == (True, first["id"])
               for r in lifecycle)
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    final = lifecycle[-1]
    assert client.get(f"/v1/responses/{final['id']}", headers=AUTH).get_json() == final
    assert upstream_body()["stream"] is True and upstream_body()["store"] is False


@responses.activate
def test_a_relayed_upstream_error_is_openais_envelope(client: FlaskClient) -> None:
    error = {"error": {"message": "Invalid 'input'.", "type": "invalid_request_error",
                       "param": "input", "code": "invalid_value"}}
    responses.add(responses.POST, NATIVE, json=error, status=400)
    assert create(client, status=400, model="native") == error
    assert len(responses.calls) == 1  # a 400 is the request's fault: no fallback


@responses.activate
def test_a_failing_native_deployment_falls_back_to_a_chat_one(client: FlaskClient) -> None:
    responses.add(responses.POST, NATIVE, json={"error": {"message": "down"}}, status=503)
    responses.add(responses.POST, CHAT, json=COMPLETION)
    with client.post("/v1/responses", headers=AUTH,
                     json={"model": "native", "input": "Hi"}) as resp:
        answer = resp.get_json()
        assert resp.headers["x-neuroroute-route"] == "model=native; fallback=chat"
    assert (answer["output"][0]["content"][0]["text"], answer["model"]) == ("Hi!", "native")
    assert upstream_body()["messages"] == [{"role": "user", "content": "Hi"}]
    # continued on the chat deployment too: the gateway's store holds the conversation
    create(client, model="chat", previous_response_id=answer["id"], input="More")
    assert [m["role"] for m in upstream_body()["messages"]] == ["user", "assistant", "user"]


@responses.activate
def test_azure_is_addressed_by_its_v1_api(client: FlaskClient) -> None:
    responses.add_callback(responses.POST, "http://az.test/openai/v1/responses",
                           callback=native_answer)
    create(client, model="azure")
    request = responses.calls[0].request
    assert request.headers["api-key"] == "az-key"
    assert (upstream_body()["model"], upstream_body()["store"]) == ("gpt-az", False)


def test_a_cached_answer_is_a_new_response(client: FlaskClient) -> None:
    first = create(client, model="cached", metadata={"n": "1"})
    with client.post("/v1/responses", headers=AUTH, json={
            "model": "cached", "input": "Hello", "metadata": {"n": "2"}}) as resp:
        again = resp.get_json()
        assert resp.headers["x-neuroroute-cache"] == "hit"
    assert again["id"] != first["id"] and again["output"] == first["output"]
    assert again["metadata"] == {"n": "2"}
    for response in (first, again):  # each stored as itself
        assert client.get(f"/v1/responses/{response['id']}",
                          headers=AUTH).get_json() == response


@responses.activate
def test_a_stream_cut_short_is_stored_as_failed(client: FlaskClient) -> None:
    responses.add(responses.POST, CHAT, body=sse(chunk("Hel"), done=False),
                  content_type="text/event-stream")
    streamed = events(client, model="chat")
    assert [e["type"] for e in streamed[-2:]] == ["error", "response.failed"]
    failed = streamed[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    stored = client.get(f"/v1/responses/{failed['id']}", headers=AUTH).get_json()
    assert stored["status"] == "failed"
    assert stored["output"][0]["content"][0]["text"] == "Hel"


@responses.activate
def test_anthropic_through_the_chat_translation(client: FlaskClient) -> None:
    responses.add(responses.POST, f"{ANTHROPIC}/messages", json=anthropic.message(
        [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}],
        stop_reason="tool_use"))
    first = create(client, model="claude", instructions="Be brief.", input="Find x",
                   tools=[{"type": "function", "name": "lookup",
                           "parameters": {"type": "object"}}])
    sent = upstream_body()
    assert (sent["system"], sent["tools"][0]["name"]) == ("Be brief.", "lookup")
    call = first["output"][0]
    assert (call["type"], call["call_id"], call["arguments"]) == (
        "function_call", "toolu_1", '{"q":"x"}')
    responses.replace(responses.POST, f"{ANTHROPIC}/messages",
                      json=anthropic.message([{"type": "text", "text": "x is 42."}]))
    second = create(client, model="claude", previous_response_id=first["id"], input=[
        {"type": "function_call_output", "call_id": "toolu_1", "output": "42"}])
    assert second["output"][0]["content"][0]["text"] == "x is 42."
    assert [m["role"] for m in upstream_body()["messages"]] == ["user", "assistant", "user"]
    assert upstream_body()["messages"][2]["content"][0]["type"] == "tool_result"
