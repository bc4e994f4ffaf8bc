"""A scripted in-memory provider and helpers for routing tests (no network, no Flask)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from app.errors import GatewayError, UpstreamError, UpstreamHTTPError, UpstreamTimeoutError
from app.providers.base import ChatRequest, ChatResult, ChatStream, Provider, Usage
from app.settings import Deployment, Settings

SETTINGS = Settings(master_key="sk-test-master", config_path=Path("unused.yaml"),
                    deployments=())
OK = "ok"


def http_error(status: int, code: str = "upstream", retry_after: str | None = None
               ) -> UpstreamHTTPError:
    headers = {"Retry-After": retry_after} if retry_after else None
    return UpstreamHTTPError(status, {"error": {"message": f"HTTP {status}", "type": "x",
                                                "param": None, "code": code}}, headers=headers)


def refused() -> GatewayError:
    return UpstreamError("Could not connect.", code="upstream_unavailable")


def timeout() -> GatewayError:
    return UpstreamTimeoutError("Timed out.")


class FakeProvider(Provider):
    """Answers from a script: each call pops the next item (an error is raised, ``OK``
    answers); an empty script answers OK. ``mid_stream_failure`` breaks streams after one
    event."""

    kind = "fake"

    def __init__(self, deployment: Deployment, script: list[Any] | None = None,
                 mid_stream_failure: bool = False) -> None:
        super().__init__(deployment, settings=SETTINGS)
        self.script = list(script or [])
        self.calls: list[ChatRequest] = []
        self.mid_stream_failure = mid_stream_failure

    def _next(self, request: ChatRequest) -> None:
        self.calls.append(request)
        step = self.script.pop(0) if self.script else OK
        if isinstance(step, BaseException):
            raise step

    def complete(self, request: ChatRequest) -> ChatResult:
        self._next(request)
        body = {"id": "x", "object": "chat.completion", "served_by": self.deployment.id,
                "choices": []}
        return ChatResult(orjson.dumps(body), Usage(3, 2, 5))

    def stream(self, request: ChatRequest) -> ChatStream:
        self._next(request)
        stream = ChatStream()
        return stream.attach(self._events(stream))

    def _events(self, stream: ChatStream) -> Iterator[bytes]:
        yield b'data: {"first": true}\n\n'
        if self.mid_stream_failure:  # as the providers' relay ends a broken stream
            stream.error = UpstreamError("broke", code="upstream_unavailable")
            yield b'data: {"error": {"message": "broke"}}\n\n'
            return
        stream.completed = True
        yield b"data: [DONE]\n\n"


def dep(dep_id: str, name: str = "g", **fields: Any) -> Deployment:
    return Deployment(id=dep_id, name=name, provider="mock", model=dep_id, **fields)


def request(model: str = "g", stream: bool = False, **body: Any) -> ChatRequest:
    messages = body.pop("messages", [{"role": "user", "content": "hello"}])
    return ChatRequest(body={"model": model, "messages": messages, "stream": stream, **body},
                       model=model, request_id="req-1")


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def consume(stream: ChatStream) -> list[bytes]:
    """Read a stream to its end and close it, as the WSGI server does."""
    try:
        return list(stream)
    finally:
        stream.close()
