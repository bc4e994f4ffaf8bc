"""The official SDKs over an in-memory transport: what they send, and what they make of bytes.

A :class:`Upstream` stands where the gateway would: it records each request the SDK sends
and answers it with a handler's status, body and content type, so tests drive the real
``anthropic.Anthropic`` / ``openai.OpenAI`` clients (their request building, error classes,
SSE decoding and stream accumulation) without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import openai
from pydantic import BaseModel

Answer = tuple[int, bytes, str]  # status, body, content type
Handler = Callable[[dict[str, Any]], Answer]


class Upstream:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        status, content, ctype = self.handler(body)
        return httpx2.Response(status, content=content, headers={"content-type": ctype})

    def http(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def sse_answer(body: bytes) -> Answer:
    return 200, body, "text/event-stream"


def json_answer(payload: Any, status: int = 200) -> Answer:
    return status, json.dumps(payload).encode(), "application/json"


def anthropic_client(upstream: Upstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url="http://gateway.test",
                               http_client=upstream.http(), max_retries=0)


def openai_client(upstream: Upstream) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1",
                         http_client=upstream.http(), max_retries=0)


def assert_no_extra(model: Any, allowed: frozenset[str] = frozenset(), path: str = "") -> None:
    """Fail if any field of ``model`` (recursively) is unknown to the SDK's type: a typo in a
    field name would otherwise pass ``model_validate`` as an extra."""
    if isinstance(model, BaseModel):
        extra = set(model.model_extra or {}) - allowed
        assert not extra, f"fields unknown to {type(model).__name__} at {path or '.'}: {extra}"
        for name in type(model).model_fields:
            assert_no_extra(getattr(model, name), allowed, f"{path}.{name}")
    elif isinstance(model, list):
        for i, item in enumerate(model):
            assert_no_extra(item, allowed, f"{path}[{i}]")
