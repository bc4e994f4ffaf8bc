"""``POST /v1/completions`` (legacy text completions) in process: the mock model's answers
and streams, validation, the relay of streams with the usage the gateway asks for, limits,
usage rows and the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from app.auth.service import Principal
from tests.conftest import UPSTREAM
from tests.openai_spec import assert_valid
from tests.unit.relayed import UPSTREAM_A, post, relayed_app, usage_rows
from tests.unit.test_ratelimit import KeyTable

MODELS: list[dict[str, Any]] = [
    {"name": "mock-text", "provider": "mock", "model": "mock-text", "mock": {"tokens": 4},
     "cache": {"ttl": 60}},
    {"name": "chat-only", "provider": "openai", "model": "gpt-up", "api_base": UPSTREAM},
    {"name": "instruct", "provider": "openai", "model": "gpt-3.5-turbo-instruct",
     "api_base": UPSTREAM_A, "endpoints": ["completions"]},
]
URL = f"{UPSTREAM_A}/completions"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Flask:
    return relayed_app(tmp_path, database_url, MODELS)


def complete(client: FlaskClient, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return post(client, "/v1/completions", {"model": "mock-text", "prompt": "Say hi", **body},
                headers)


def events(resp: Any) -> list[Any]:
    """The ``data:`` payloads of an SSE answer (``[DONE]`` as the string)."""
    assert resp.mimetype == "text/event-stream"
    out = []
    for event in resp.get_data(as_text=True).split("\n\n"):
        if event:
            assert event.startswith("data: "), event
            data = event[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "cmpl-up", "object": "text_completion", "created": 1, "model": "up",
            "choices": [{"text": text, "index": 0, "logprobs": None,
                         "finish_reason": finish}], **extra}


def sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads) \
        + b"data: [DONE]\n\n"


# --- the mock model -----------------------------------------------------------------------

def test_mock_completion_is_openai_shaped_with_usage(client: FlaskClient) -> None:
    resp = complete(client)
    assert resp.status_code == 200
    answer = resp.get_json()
    assert_valid(answer, "CreateCompletionResponse")
    [choice] = answer["choices"]
    assert choice["finish_reason"] == "stop" and len(choice["text"].split()) == 4
    assert answer["usage"]["completion_tokens"] == 4
    again = complete(client, headers={"Cache-Control": "no-cache"}).get_json()
    assert again["choices"][0]["text"] == choice["text"]  # deterministic


def test_mock_prompts_n_echo_and_max_tokens(client: FlaskClient) -> None:
    answer = complete(client, prompt=["Hello", "World"], n=2, max_tokens=2, echo=True).get_json()
    assert_valid(answer, "CreateCompletionResponse")
    choices = answer["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert {c["finish_reason"] for c in choices} == {"length"}
    assert choices[0]["text"].startswith("Hello") and choices[2]["text"].startswith("World")
    assert answer["usage"]["completion_tokens"] == 8
    tokens = complete(client, prompt=[[1, 2, 3], [4]]).get_json()
    assert len(tokens["choices"]) == 2 and tokens["usage"]["prompt_tokens"] == 4
    too_many = complete(client, prompt=["a"] * 100, n=21)  # 2100 choices, over 2048
    assert too_many.status_code == 400 and too_many.get_json()["error"]["param"] == "n"


@pytest.mark.parametrize("include_usage", [False, True])
def test_mock_stream_chunks_and_usage(client: FlaskClient, include_usage: bool) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    resp = complete(client, stream=True, **options)
    assert resp.status_code == 200 and resp.headers["x-neuroroute-cache"] == "skip"
    payloads = events(resp)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(c["object"] == "text_completion" for c in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == complete(client).get_json()["choices"][0]["text"]
    last = chunks[-2] if include_usage else chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert_valid(last, "CreateCompletionResponse")
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    else:
        assert all("usage" not in c for c in chunks)
    row = usage_rows(client)[0]
    assert (row.api, row.stream, row.completion_tokens, row.estimated) == (
        "completions", True, 4, False)


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": [1, "a"]}, "prompt[1]"),
    ({"prompt": []}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"best_of": 21}, "best_of"),
    ({"logprobs": 6}, "logprobs"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"temperature": 3}, "temperature"),
    ({"echo": 1}, "echo"),
])
def test_invalid_bodies_are_400_naming_the_field(client: FlaskClient, body: dict[str, Any],
                                                 param: str) -> None:
    resp = complete(client, **body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["param"] == param, resp.get_json()


def test_prompt_is_required_but_may_be_null(client: FlaskClient) -> None:
    missing = post(client, "/v1/completions", {"model": "mock-text"})
    assert missing.get_json()["error"]["param"] == "prompt"
    assert complete(client, prompt=None).status_code == 200  # the upstream's default prompt


@responses.activate
def test_a_chat_only_model_refuses_completions(client: FlaskClient) -> None:
    resp = complete(client, model="chat-only")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "model_not_supported"
    assert len(responses.calls) == 0


# --- relayed to an OpenAI-compatible upstream ---------------------------------------------

@responses.activate
def test_stream_asks_for_usage_strips_it_and_accounts_it(client: FlaskClient) -> None:
    responses.post(URL, body=sse(chunk("Hel"), chunk("lo", "stop"),
                                 {**chunk(""), "choices": [], "usage": USAGE}),
                   content_type="text/event-stream")
    resp = complete(client, model="instruct", stream=True, suffix="!")
    sent = json.loads(responses.calls[0].request.body)
    assert sent == {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "stream": True,
                    "suffix": "!", "stream_options": {"include_usage": True}}
    payloads = events(resp)
    assert [p["choices"][0]["text"] for p in payloads[:-1]] == ["Hel", "lo"]  # no usage chunk
    assert payloads[-1] == "[DONE]"
    [row] = usage_rows(client)
    assert (row.api, row.prompt_tokens, row.completion_tokens) == ("completions", 3, 2)
    assert row.cost == pytest.approx((3 * 1.50 + 2 * 2.00) / 1_000_000)


@responses.activate
def test_stream_usage_the_client_asked_for_is_relayed(client: FlaskClient) -> None:
    body = sse(chunk("Hi", "stop"), {**chunk(""), "choices": [], "usage": USAGE})
    responses.post(URL, body=body, content_type="text/event-stream")
    resp = complete(client, model="instruct", stream=True,
                    stream_options={"include_usage": True})
    assert resp.data == body  # as the upstream sent it
    assert json.loads(responses.calls[0].request.body)["stream_options"] == {
        "include_usage": True}


@responses.activate
def test_non_stream_is_relayed_as_is_and_cached_only_when_configured(
        client: FlaskClient) -> None:
    answer = json.dumps({**chunk("Hello", "stop"), "usage": USAGE}).encode()
    responses.post(URL, body=answer, content_type="application/json")
    first = complete(client, model="instruct")
    second = complete(client, model="instruct")
    assert first.data == answer and second.data == answer and len(responses.calls) == 2
    assert second.headers["x-neuroroute-cache"] == "skip"  # no cache policy on instruct
    cached = [complete(client, max_tokens=3) for _ in range(2)]
    assert [r.headers["x-neuroroute-cache"] for r in cached] == ["miss", "hit"]
    assert cached[1].data == cached[0].data


@responses.activate
def test_an_upstream_failure_mid_stream_ends_with_an_error_event(client: FlaskClient) -> None:
    responses.post(URL, body=b"data: " + json.dumps(chunk("Hel")).encode()
                   + b"\n\ndata: {not json\n\n", content_type="text/event-stream")
    resp = complete(client, model="instruct", stream=True)
    payloads = events(resp)
    assert payloads[0]["choices"][0]["text"] == "Hel"
    assert payloads[-1]["error"]["code"] == "upstream_invalid_response"
    [row] = usage_rows(client)
    assert row.status == 502 and row.error_code == "upstream_invalid_response"
    assert row.estimated is True and row.completion_tokens == 1  # one chunk with text


def test_tpm_is_charged_the_prompt_estimate_plus_max_tokens(app: Flask) -> None:
    app.extensions["neuroroute"].authenticator = KeyTable(
        {"sk-t": Principal("t", "member", tpm_limit=100)})
    client = app.test_client()
    key = {"Authorization": "Bearer sk-t"}
    first = complete(client, key, prompt="x" * 80, max_tokens=30)  # 20 + 30 tokens
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "50"
    refused = complete(client, key, prompt="x" * 80, max_tokens=40)
    assert refused.status_code == 429
