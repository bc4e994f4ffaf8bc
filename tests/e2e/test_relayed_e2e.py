"""End to end: the openai SDK -> real Gunicorn (gevent) -> embeddings and legacy text
completions, answered by the built-in mock model and relayed to the local OpenAI-compatible
mock upstream (``bench/mock_upstream.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.openai_spec import assert_valid
from tests.procs import MASTER_KEY, Proc, running, sdk_client, start_gateway

pytestmark = pytest.mark.e2e

EMBEDDERS = ["mock-embed", "up-embed"]  # the built-in mock, the mock upstream
WRITERS = ["mock-text", "up-text"]


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    base = f"{upstream.url}/v1"
    models = [
        {"name": "mock-embed", "provider": "mock", "model": "mock-embed"},
        {"name": "mock-text", "provider": "mock", "model": "mock-text", "mock": {"tokens": 6}},
        {"name": "up-embed", "provider": "openai", "model": "text-embedding-3-small",
         "api_base": base, "endpoints": ["embeddings"]},
        {"name": "up-text", "provider": "vllm", "model": "gpt-3.5-turbo-instruct",
         "api_base": base, "endpoints": ["completions"]},
        {"name": "up-chat", "provider": "openai", "model": "gpt-4o-mini", "api_base": base},
    ]
    with running(start_gateway(e2e_tmp, models)) as proc:
        yield proc


@pytest.fixture
def client(gateway: Proc) -> Iterator[openai.OpenAI]:
    with sdk_client(gateway) as sdk:
        yield sdk


def last_upstream_body(upstream: Proc) -> Any:
    return requests.get(f"{upstream.url}/_stats", timeout=5).json()["last_body"]


@pytest.mark.parametrize("model", EMBEDDERS)
def test_base64_the_sdk_asks_for_decodes_to_the_float_vectors(
        client: openai.OpenAI, upstream: Proc, model: str) -> None:
    floats = client.embeddings.create(model=model, input="The quick brown fox",
                                      encoding_format="float")
    assert_valid(floats.model_dump(exclude_unset=True), "CreateEmbeddingResponse")
    decoded = client.embeddings.create(model=model, input="The quick brown fox")  # base64
    if model == "up-embed":
        assert last_upstream_body(upstream)["encoding_format"] == "base64"  # relayed as asked
    assert decoded.data[0].embedding == floats.data[0].embedding
    assert len(floats.data[0].embedding) == (16 if model == "mock-embed" else 8)
    usage = floats.usage
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens


@pytest.mark.parametrize("model", EMBEDDERS)
def test_strings_token_arrays_and_dimensions(client: openai.OpenAI, upstream: Proc,
                                             model: str) -> None:
    batch = client.embeddings.create(model=model, input=["alpha", "beta", "alpha"])
    assert [d.index for d in batch.data] == [0, 1, 2]
    assert batch.data[0].embedding == batch.data[2].embedding != batch.data[1].embedding
    tokens = client.embeddings.create(model=model, input=[[1212, 318, 257], [1332, 13]],
                                      encoding_format="float")
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5
    one = client.embeddings.create(model=model, input=[1212, 318, 257])
    assert len(one.data) == 1 and one.data[0].embedding == tokens.data[0].embedding
    short = client.embeddings.create(model=model, input="alpha", dimensions=4)
    assert len(short.data[0].embedding) == 4
    if model == "up-embed":
        assert last_upstream_body(upstream)["dimensions"] == 4


@pytest.mark.parametrize("model", WRITERS)
def test_text_completion(client: openai.OpenAI, model: str) -> None:
    completion = client.completions.create(model=model, prompt="Say hello", max_tokens=4)
    assert_valid(completion.model_dump(exclude_unset=True), "CreateCompletionResponse")
    assert completion.object == "text_completion"
    [choice] = completion.choices
    assert choice.finish_reason == "length" and len(choice.text.split()) == 4
    assert completion.usage is not None and completion.usage.completion_tokens == 4


@pytest.mark.parametrize("model", WRITERS)
def test_text_completion_stream(client: openai.OpenAI, upstream: Proc, model: str) -> None:
    chunks = list(client.completions.create(model=model, prompt="Say hello", stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == client.completions.create(model=model, prompt="Say hello").choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    without = list(client.completions.create(model=model, prompt="Say hello", stream=True))
    assert all(c.usage is None for c in without)  # the gateway's own usage chunk is stripped
    if model == "up-text":
        assert last_upstream_body(upstream)["stream_options"] == {"include_usage": True}


def test_a_chat_model_refuses_embeddings_and_models_say_what_they_serve(
        client: openai.OpenAI, gateway: Proc) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="up-chat", input="hi")
    assert info.value.code == "model_not_supported"
    served = {m.id: (m.model_extra or {})["neuroroute"]["endpoints"]
              for m in client.models.list()}
    assert served == {"mock-embed": ["chat", "embeddings", "completions"],
                      "mock-text": ["chat", "embeddings", "completions"],
                      "up-embed": ["embeddings"], "up-text": ["completions"],
                      "up-chat": ["chat"]}
    raw = requests.get(f"{gateway.url}/v1/models", timeout=5,
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()
    assert_valid(raw, "ListModelsResponse")
