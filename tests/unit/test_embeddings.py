"""``POST /v1/embeddings`` in process: the mock model's vectors, validation, relay to
OpenAI-compatible and Azure upstreams, routing and fallbacks among embedding deployments,
TPM, usage and cost, the cache, and what /v1/models says about it."""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.auth.service import Principal
from app.settings import load_settings
from app.tokens import estimate_input_tokens
from tests.conftest import AUTH, UPSTREAM
from tests.openai_spec import assert_valid
from tests.unit.relayed import UPSTREAM_A, UPSTREAM_B, post, relayed_app, usage_rows
from tests.unit.test_ratelimit import KeyTable

MODELS: list[dict[str, Any]] = [
    {"name": "mock-embed", "provider": "mock", "model": "mock-embed"},
    {"name": "chat-only", "provider": "openai", "model": "gpt-up", "api_base": UPSTREAM},
    {"name": "embed", "provider": "openai", "model": "text-embedding-3-small",
     "api_base": UPSTREAM_A, "endpoints": ["embeddings"], "id": "embed-a",
     "cache": {"ttl": 60}},
]


def vectors(data: list[dict[str, Any]]) -> list[list[float]]:
    """The vectors of an embeddings answer, base64 ones decoded (little-endian float32)."""
    out = []
    for item in data:
        value = item["embedding"]
        if isinstance(value, str):
            raw = base64.b64decode(value)
            value = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        out.append(value)
    return out


def upstream_answer(count: int = 1, prompt_tokens: int = 7, dims: int = 3) -> dict[str, Any]:
    vector = base64.b64encode(struct.pack(f"<{dims}f", *[0.5] * dims)).decode()
    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": i, "embedding": vector}
                     for i in range(count)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Flask:
    return relayed_app(tmp_path, database_url, MODELS)


def embed(client: FlaskClient, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return post(client, "/v1/embeddings", {"model": "mock-embed", **body}, headers)


# --- the mock model -----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["The quick brown fox", ["one", "two", "three"],
                                   [1212, 318, 257], [[1212, 318], [257, 1332, 13]]],
                         ids=["string", "strings", "tokens", "token-arrays"])
def test_mock_answers_every_input_shape_float_and_base64_alike(client: FlaskClient,
                                                               value: Any) -> None:
    floats = embed(client, input=value)
    assert floats.status_code == 200, floats.get_data(as_text=True)
    answer = floats.get_json()
    assert_valid(answer, "CreateEmbeddingResponse")
    count = len(value) if isinstance(value, list) and isinstance(value[0], str | list) else 1
    assert [d["index"] for d in answer["data"]] == list(range(count))
    encoded = embed(client, input=value, encoding_format="base64").get_json()
    assert all(isinstance(d["embedding"], str) for d in encoded["data"])
    assert vectors(encoded["data"]) == vectors(answer["data"])  # float32 values, exactly
    for vector in vectors(answer["data"]):
        assert len(vector) == 16 and math.isclose(math.fsum(v * v for v in vector), 1,
                                                  rel_tol=1e-5)
    tokens = estimate_input_tokens(value)
    assert answer["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_mock_vectors_are_deterministic_per_input_and_honour_dimensions(
        client: FlaskClient) -> None:
    first = vectors(embed(client, input=["alpha", "beta", "alpha"]).get_json()["data"])
    assert first[0] == first[2] and first[0] != first[1]
    assert vectors(embed(client, input="alpha").get_json()["data"]) == [first[0]]
    short = embed(client, input="alpha", dimensions=4).get_json()
    [vector] = vectors(short["data"])
    assert len(vector) == 4
    # shortened as OpenAI shortens: the longer vector's start, renormalized
    norm = math.sqrt(sum(v * v for v in first[0][:4]))
    assert vector == pytest.approx([v / norm for v in first[0][:4]], rel=1e-5)
    for body in ({"input": "alpha", "dimensions": 3073},  # more than the mock has
                 {"input": ["x"] * 2048, "dimensions": 1024}):  # 2**21 values: too many
        too_many = embed(client, **body)
        assert too_many.status_code == 400
        assert too_many.get_json()["error"]["param"] == "dimensions"


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "param"), [
    ({"input": None}, "input"),
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["a", 1]}, "input[1]"),
    ({"input": ["a", ""]}, "input[1]"),
    ({"input": [[1, 2], []]}, "input[1]"),
    ({"input": [[1, 2], ["x"]]}, "input[1]"),
    ({"input": [1, -2]}, "input[1]"),
    ({"input": [1, True]}, "input[1]"),
    ({"input": ["x"] * 2049}, "input"),
    ({"input": {"text": "x"}}, "input"),
    ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x", "dimensions": "8"}, "dimensions"),
    ({"input": "x", "model": ""}, "model"),
])
def test_invalid_bodies_are_400_naming_the_field(client: FlaskClient, body: dict[str, Any],
                                                 param: str) -> None:
    resp = embed(client, **body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == param, resp.get_json()


def test_missing_input_and_whole_number_tokens(client: FlaskClient) -> None:
    missing = post(client, "/v1/embeddings", {"model": "mock-embed"})
    assert missing.get_json()["error"]["code"] == "missing_required_parameter"
    assert embed(client, input=[1.0, 2]).status_code == 200  # JSON's 1.0 is the integer 1


@responses.activate
def test_a_chat_only_model_refuses_embeddings_without_calling_it(client: FlaskClient) -> None:
    resp = embed(client, model="chat-only", input="hi")
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert (error["code"], error["param"]) == ("model_not_supported", "model")
    assert "embeddings" in error["message"]
    assert len(responses.calls) == 0


# --- relayed to an OpenAI-compatible upstream ---------------------------------------------

@responses.activate
def test_relay_sends_the_body_as_is_and_returns_the_upstream_bytes(client: FlaskClient) -> None:
    answer = json.dumps(upstream_answer(2)).encode()
    responses.post(f"{UPSTREAM_A}/embeddings", body=answer, content_type="application/json")
    body = {"model": "embed", "input": ["a", "b"], "encoding_format": "base64",
            "dimensions": 3, "user": "u-1", "extra_field": {"kept": True}}
    resp = post(client, "/v1/embeddings", body, {"Cache-Control": "no-store"})
    assert resp.status_code == 200
    assert resp.data == answer  # byte for byte, base64 vectors untouched
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {**body, "model": "text-embedding-3-small"}
    assert responses.calls[0].request.headers["X-Request-ID"] == resp.headers["X-Request-ID"]


@responses.activate
def test_usage_row_and_cost_come_from_input_tokens(client: FlaskClient) -> None:
    responses.post(f"{UPSTREAM_A}/embeddings", json=upstream_answer(prompt_tokens=1000))
    resp = post(client, "/v1/embeddings", {"model": "embed", "input": "hello"},
                {"X-Request-ID": "emb-1", "Cache-Control": "no-store"})
    cost = 1000 * 0.02 / 1_000_000  # text-embedding-3-small's list price, input only
    assert float(resp.headers["x-neuroroute-cost"]) == pytest.approx(cost)
    [row] = usage_rows(client)
    assert (row.request_id, row.api, row.model, row.deployment) == (
        "emb-1", "embeddings", "embed", "embed-a")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1000, 0, 1000)
    assert row.estimated is False and row.price_known is True
    assert row.cost == pytest.approx(cost) and row.status == 200 and row.stream is False


@responses.activate
def test_cache_answers_an_identical_request_with_the_same_bytes(client: FlaskClient) -> None:
    responses.post(f"{UPSTREAM_A}/embeddings", json=upstream_answer())
    first = post(client, "/v1/embeddings", {"model": "embed", "input": "hi"})
    second = post(client, "/v1/embeddings", {"model": "embed", "input": "hi", "user": "other"})
    assert (first.headers["x-neuroroute-cache"], second.headers["x-neuroroute-cache"]) == (
        "miss", "hit")
    assert second.data == first.data and len(responses.calls) == 1
    for changed in ({"input": "ho"}, {"input": "hi", "encoding_format": "base64"},
                    {"input": "hi", "dimensions": 2}):
        resp = post(client, "/v1/embeddings", {"model": "embed", **changed})
        assert resp.headers["x-neuroroute-cache"] == "miss", changed
    rows = usage_rows(client)
    assert [r.cache_hit for r in rows[:2]] == [False, True] and rows[1].cost == 0.0


def test_tpm_is_charged_the_estimated_input_tokens(app: Flask) -> None:
    app.extensions["neuroroute"].authenticator = KeyTable(
        {"sk-t": Principal("t", "member", tpm_limit=100)})
    client = app.test_client()
    text = "x" * 200  # 50 tokens by the estimate
    key = {"Authorization": "Bearer sk-t"}
    first = embed(client, key, input=text)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "50"
    batch = embed(client, key, input=[[1, 2, 3, 4, 5] * 5, [6] * 5])  # 25 + 5 tokens
    assert batch.headers["x-ratelimit-remaining-tokens"] == "20"
    refused = embed(client, key, input=text)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limit_exceeded"


# --- routing, fallbacks, Azure ------------------------------------------------------------

@responses.activate
def test_a_failing_deployment_is_retried_on_the_other_one(tmp_path: Path,
                                                          database_url: str) -> None:
    models = [
        {"name": "embed", "id": "cheap", "provider": "openai", "model": "e-cheap",
         "api_base": UPSTREAM_A, "endpoints": ["embeddings"], "input_cost_per_mtok": 0.01},
        {"name": "embed", "id": "dear", "provider": "openai", "model": "e-dear",
         "api_base": UPSTREAM_B, "endpoints": ["embeddings"], "input_cost_per_mtok": 0.05},
        # in the group, but chat only: never sent an embeddings request
        {"name": "embed", "id": "chat", "provider": "openai", "model": "c",
         "api_base": UPSTREAM, "input_cost_per_mtok": 0.001},
    ]
    client = relayed_app(tmp_path, database_url, models,
                         groups={"embed": {"strategy": "cheapest"}}).test_client()
    responses.post(f"{UPSTREAM_A}/embeddings", status=503,
                   json={"error": {"message": "overloaded", "type": "server_error"}})
    responses.post(f"{UPSTREAM_B}/embeddings", json=upstream_answer())
    resp = post(client, "/v1/embeddings", {"model": "embed", "input": "hi"})
    assert resp.status_code == 200
    assert (resp.headers["x-neuroroute-deployment"], resp.headers["x-neuroroute-attempts"]) == (
        "dear", "2")
    assert [c.request.url for c in responses.calls] == [f"{UPSTREAM_A}/embeddings",
                                                        f"{UPSTREAM_B}/embeddings"]


@responses.activate
def test_fallback_groups_skip_those_without_embeddings(tmp_path: Path,
                                                       database_url: str) -> None:
    models = [
        {"name": "primary", "provider": "openai", "model": "e1", "api_base": UPSTREAM_A,
         "endpoints": ["embeddings"]},
        {"name": "chatty", "provider": "openai", "model": "c", "api_base": UPSTREAM},
        {"name": "backup", "provider": "mock", "model": "backup-embed"},
    ]
    client = relayed_app(tmp_path, database_url, models, groups={
        "primary": {"retries": 0, "fallbacks": ["chatty", "backup"]}}).test_client()
    responses.post(f"{UPSTREAM_A}/embeddings", status=503, json={"error": {"message": "down"}})
    resp = post(client, "/v1/embeddings", {"model": "primary", "input": ["a", "b"]})
    assert resp.status_code == 200
    assert resp.headers["x-neuroroute-route"] == "model=primary; fallback=backup"
    assert resp.get_json()["model"] == "backup-embed" and len(resp.get_json()["data"]) == 2
    assert len(responses.calls) == 1  # the chat-only group was not asked
    [row] = usage_rows(client)
    assert (row.api, row.deployment, row.attempts) == ("embeddings", "backup#0", 2)


@responses.activate
def test_azure_url_layout_for_embeddings_and_completions(tmp_path: Path,
                                                         database_url: str) -> None:
    base = "https://res.openai.azure.test"
    client = relayed_app(tmp_path, database_url, [
        {"name": "az", "provider": "azure", "model": "my-deployment", "api_base": base,
         "api_key": "az-key", "api_version": "2024-10-21",
         "endpoints": ["embeddings", "completions"]}]).test_client()
    prefix = f"{base}/openai/deployments/my-deployment"
    responses.post(f"{prefix}/embeddings?api-version=2024-10-21", json=upstream_answer())
    completion = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                  "choices": [{"text": "hi", "index": 0, "logprobs": None,
                               "finish_reason": "stop"}]}
    responses.post(f"{prefix}/completions?api-version=2024-10-21", json=completion)
    assert post(client, "/v1/embeddings", {"model": "az", "input": "x"}).status_code == 200
    assert post(client, "/v1/completions", {"model": "az", "prompt": "x"}).status_code == 200
    assert [c.request.url for c in responses.calls] == [
        f"{prefix}/embeddings?api-version=2024-10-21",
        f"{prefix}/completions?api-version=2024-10-21"]
    for call in responses.calls:
        assert call.request.headers["api-key"] == "az-key"
        assert "Authorization" not in call.request.headers
    chat = post(client, "/v1/chat/completions",
                {"model": "az", "messages": [{"role": "user", "content": "x"}]})
    assert chat.get_json()["error"]["code"] == "model_not_supported"


# --- /v1/models ---------------------------------------------------------------------------

def test_models_say_which_endpoints_each_serves(client: FlaskClient) -> None:
    listing = client.get("/v1/models", headers=AUTH)
    body = listing.get_json()
    assert_valid(body, "ListModelsResponse")
    served = {m["id"]: m["neuroroute"]["endpoints"] for m in body["data"]}
    assert served == {"mock-embed": ["chat", "embeddings", "completions"],
                      "chat-only": ["chat"], "embed": ["embeddings"]}
    one = client.get("/v1/models/embed", headers=AUTH)
    assert_valid(one.get_json(), "Model")
    assert one.get_json()["neuroroute"] == {"endpoints": ["embeddings"]}


@pytest.mark.parametrize(("value", "tokens"), [
    ("", 0), ("abc", 1), ("x" * 40, 10), (["x" * 8, "y" * 4], 3), ([5, 6, 7], 3),
    ([[1, 2], [3]], 3), (None, 0),
])
def test_input_token_estimate(value: Any, tokens: int) -> None:
    assert estimate_input_tokens(value) == tokens


def test_readme_example_is_a_valid_config(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Embeddings and text completions", 1)[1]
    path = tmp_path / "relayed.yaml"
    path.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    settings = load_settings({"NEUROROUTE_MASTER_KEY": "sk-test-master",
                              "NEUROROUTE_CONFIG": str(path), "OPENAI_API_KEY": "k",
                              "AZURE_OPENAI_API_KEY": "k"})
    assert [(d.provider, set(d.endpoints)) for d in settings.deployments] == [
        ("openai", {"embeddings"}), ("vllm", {"embeddings"}), ("azure", {"completions"})]


def test_the_document_describes_both_apis_and_their_examples_answer(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    validate(doc)
    for path, answer in (("/v1/embeddings", "EmbeddingList"), ("/v1/completions", "Completion")):
        op = doc["paths"][path]["post"]
        content = op["responses"]["200"]["content"]
        assert content["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{answer}"}
        assert ("text/event-stream" in content) is (path == "/v1/completions")
        assert "model_not_supported" in op["responses"]["400"]["description"]
        examples = op["requestBody"]["content"]["application/json"]["examples"].values()
        for ref in examples:
            example = doc["components"]["examples"][ref["$ref"].rsplit("/", 1)[1]]["value"]
            assert example["model"] == "mock-embed"  # the first model serving the API
            resp = post(client, path, example)
            assert resp.status_code == 200, resp.get_data(as_text=True)
