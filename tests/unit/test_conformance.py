"""What the gateway itself produces validates against OpenAI's published schemas."""

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import AUTH, chat_body
from tests.openai_spec import assert_valid


def stream_events(raw: bytes) -> list[Any]:
    out = []
    for event in raw.split(b"\n\n"):
        if event:
            data = event.removeprefix(b"data: ")
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def test_mock_completion_is_a_valid_openai_completion(client: FlaskClient) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
    body = resp.get_json()
    assert_valid(body, "CreateChatCompletionResponse")
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "stop"


def test_mock_is_deterministic_and_honours_max_tokens(client: FlaskClient) -> None:
    first = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH).get_json()
    again = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH).get_json()
    assert first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]
    short = client.post("/v1/chat/completions", json=chat_body(max_tokens=2),
                        headers=AUTH).get_json()
    assert short["usage"]["completion_tokens"] == 2
    assert short["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("include_usage", [False, True])
def test_mock_stream_chunks_are_valid_openai_chunks(client: FlaskClient,
                                                    include_usage: bool) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": include_usage})
    resp = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert resp.mimetype == "text/event-stream"
    events = stream_events(resp.data)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    for c in chunks:
        assert_valid(c, "CreateChatCompletionStreamResponse")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    full = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH).get_json()
    assert text == full["choices"][0]["message"]["content"]
    usage_chunks = [c for c in chunks if c.get("usage")]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
        assert usage_chunks[0]["usage"]["completion_tokens"] == 5
        assert chunks[-1] is usage_chunks[0]
    else:
        assert usage_chunks == [] and all("usage" not in c for c in chunks)


def test_models_list_and_object_are_valid(client: FlaskClient) -> None:
    listing = client.get("/v1/models", headers=AUTH).get_json()
    assert_valid(listing, "ListModelsResponse")
    assert [m["id"] for m in listing["data"]] == ["mock-fast", "gpt-test"]
    one = client.get("/v1/models/gpt-test", headers=AUTH).get_json()
    assert_valid(one, "Model")
    assert one["owned_by"] == "openai"


def test_model_ids_with_slashes(make_settings: Any) -> None:
    from app import create_app

    app = create_app(make_settings([{"name": "meta-llama/Llama-3.2-3B", "provider": "mock",
                                     "model": "m"}]))
    resp = app.test_client().get("/v1/models/meta-llama/Llama-3.2-3B", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["id"] == "meta-llama/Llama-3.2-3B"


def test_health(client: FlaskClient) -> None:
    assert client.get("/health/live").get_json() == {"status": "ok"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"
    assert ready.get_json()["checks"]["config"]["detail"]["deployments"] == 2


def test_admin_config_redacts_secrets(client: FlaskClient) -> None:
    resp = client.get("/admin/config", headers=AUTH)
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "sk-upstream-secret" not in text and "sk-test-master-key" not in text
    models = resp.get_json()["models"]
    assert models[1]["api_key"] == "<redacted: literal>"
