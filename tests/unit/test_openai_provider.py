"""The OpenAI-compatible relay against a `responses` upstream: bodies, headers, error mapping."""

import json
from typing import Any

import orjson
import pytest
import requests
import responses
from flask.testing import FlaskClient

from tests.conftest import AUTH, UPSTREAM, chat_body
from tests.openai_spec import assert_valid

URL = f"{UPSTREAM}/chat/completions"

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-test-upstream", "system_fingerprint": "fp_1",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}


def sse(*payloads: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return out + (b"data: [DONE]\n\n" if done else b"")


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-test-upstream",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def sse_data(raw: bytes) -> list[Any]:
    events = [e for e in raw.split(b"\n\n") if e]
    out = []
    for event in events:
        assert event.startswith(b"data: "), event
        data = event[6:]
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


@responses.activate
def test_non_stream_relays_body_untouched_and_forwards_unknown_fields(
        client: FlaskClient) -> None:
    upstream_body = orjson.dumps(COMPLETION)
    responses.post(URL, body=upstream_body, content_type="application/json")
    body = chat_body("gpt-test", temperature=0.2, some_new_openai_param={"x": [1, 2]},
                     metadata={"k": "v"})
    resp = client.post("/v1/chat/completions", json=body,
                       headers={**AUTH, "X-Request-ID": "req-42"})
    assert resp.status_code == 200
    assert resp.data == upstream_body
    assert_valid(resp.get_json(), "CreateChatCompletionResponse")
    assert resp.headers["X-Request-ID"] == "req-42"
    assert resp.headers["x-neuroroute-deployment"] == "gpt-test#0"

    sent = responses.calls[0].request
    forwarded = json.loads(sent.body)
    assert forwarded == {**body, "model": "gpt-test-upstream"}
    assert sent.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert sent.headers["X-Request-ID"] == "req-42"
    assert sent.headers["Content-Type"] == "application/json"


@responses.activate
def test_stream_relays_events_with_sse_headers(client: FlaskClient) -> None:
    payload = sse(chunk(""), chunk("Hel"), chunk("lo"), chunk(None, "stop"))
    responses.post(URL, body=payload, content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=True),
                       headers=AUTH)
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert resp.data == payload  # byte for byte: no re-serialisation
    assert responses.calls[0].request.headers["Accept"] == "text/event-stream"


@responses.activate
def test_stream_with_crlf_framing_is_normalised(client: FlaskClient) -> None:
    payload = sse(chunk("a"), chunk(None, "stop")).replace(b"\n", b"\r\n")
    responses.post(URL, body=payload, content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=True),
                       headers=AUTH)
    events = sse_data(resp.data)
    assert events[-1] == "[DONE]" and events[0]["choices"][0]["delta"] == {"content": "a"}


@responses.activate
def test_stream_that_ends_without_done_gets_an_error_event(client: FlaskClient) -> None:
    responses.post(URL, body=sse(chunk("a"), done=False), content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=True),
                       headers=AUTH)
    events = sse_data(resp.data)
    assert events[0]["choices"][0]["delta"] == {"content": "a"}
    assert events[-1]["error"]["code"] == "upstream_stream_truncated"
    assert_valid(events[-1], "ErrorResponse")


@pytest.mark.parametrize("status", [400, 404, 422, 429, 500, 503])
@responses.activate
def test_upstream_openai_errors_are_relayed_faithfully(client: FlaskClient, status: int) -> None:
    err = {"error": {"message": "upstream says no", "type": "invalid_request_error",
                     "param": "messages", "code": "context_length_exceeded"}}
    responses.post(URL, json=err, status=status, headers={"Retry-After": "7"})
    for stream in (False, True):
        resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=stream),
                           headers=AUTH)
        assert resp.status_code == status
        assert resp.get_json() == err
        if status in (429, 503):
            assert resp.headers["Retry-After"] == "7"


@pytest.mark.parametrize(("upstream", "status", "message"), [
    ({"error": "model 'x' not found"}, 404, "model 'x' not found"),  # Ollama-style
    ({"detail": "Not Found"}, 404, "Not Found"),  # FastAPI-style
    (b"<html>502 Bad Gateway</html>", 502, "502 Bad Gateway"),
])
@responses.activate
def test_non_openai_error_bodies_are_wrapped(client: FlaskClient, upstream: Any, status: int,
                                             message: str) -> None:
    if isinstance(upstream, bytes):
        responses.post(URL, body=upstream, status=status, content_type="text/html")
    else:
        responses.post(URL, json=upstream, status=status)
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test"), headers=AUTH)
    assert resp.status_code == status
    body = resp.get_json()
    assert_valid(body, "ErrorResponse")
    assert message in body["error"]["message"]


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_upstream_auth_failure_is_a_gateway_fault_not_the_clients(client: FlaskClient,
                                                                  status: int) -> None:
    responses.post(URL, json={"error": {"message": "Incorrect API key", "type": "x",
                                        "param": None, "code": "invalid_api_key"}}, status=status)
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test"), headers=AUTH)
    assert resp.status_code == 502
    err = resp.get_json()["error"]
    assert err["code"] == "upstream_auth_error" and "gpt-test#0" in err["message"]
    assert "sk-upstream-secret" not in resp.get_data(as_text=True)


@pytest.mark.parametrize(("exc", "status", "code"), [
    (requests.ConnectionError("refused"), 502, "upstream_unavailable"),
    (requests.ConnectTimeout("slow connect"), 504, "upstream_timeout"),
    (requests.ReadTimeout("slow read"), 504, "upstream_timeout"),
])
@pytest.mark.parametrize("stream", [False, True])
@responses.activate
def test_transport_failures_map_to_502_504(client: FlaskClient, exc: Exception, status: int,
                                           code: str, stream: bool) -> None:
    responses.post(URL, body=exc)
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=stream),
                       headers=AUTH)
    assert resp.status_code == status
    body = resp.get_json()
    assert_valid(body, "ErrorResponse")
    assert body["error"]["code"] == code


@responses.activate
def test_invalid_upstream_answers_are_502(client: FlaskClient) -> None:
    responses.post(URL, body=b"not json", content_type="application/json")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test"), headers=AUTH)
    assert resp.status_code == 502
    assert resp.get_json()["error"]["code"] == "upstream_invalid_response"

    responses.replace(responses.POST, URL, json={"choices": []}, content_type="application/json")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=True),
                       headers=AUTH)
    assert resp.status_code == 502
    assert "event stream" in resp.get_json()["error"]["message"]

    responses.replace(responses.POST, URL, body=b"", content_type="text/event-stream")
    resp = client.post("/v1/chat/completions", json=chat_body("gpt-test", stream=True),
                       headers=AUTH)
    assert resp.status_code == 502
    assert "before its first event" in resp.get_json()["error"]["message"]


def test_usage_is_read_from_the_stream(settings: Any) -> None:
    from app.providers.base import ChatStream
    from app.providers.openai import PassThrough

    stream = ChatStream()
    block = sse(chunk(None, "stop"), {**chunk(), "choices": [],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": 4,
                                                "total_tokens": 7}})
    kept = PassThrough(stream, deployment=settings.deployments[1], strip_usage=True).feed(block)
    assert stream.usage is not None and stream.usage.total_tokens == 7
    assert kept == sse(chunk(None, "stop"))  # the usage-only chunk was the gateway's


@responses.activate
def test_a_stream_closed_before_its_first_read_releases_the_upstream(settings: Any) -> None:
    from app.providers.base import ChatRequest
    from app.providers.openai import OpenAIProvider

    responses.post(URL, body=sse(chunk("a"), chunk(None, "stop")),
                   content_type="text/event-stream")
    provider = OpenAIProvider(settings.deployments[1], settings=settings)
    stream = provider.stream(ChatRequest(chat_body("gpt-test", stream=True), "gpt-test", "r"))
    upstream = stream._on_close[0].__self__  # the requests.Response behind it
    assert upstream.raw.closed is False
    stream.close()  # never iterated: the client went away before the first write
    assert upstream.raw.closed is True
