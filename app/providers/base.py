"""The small interface every upstream kind implements, and the typed objects it exchanges.

A provider knows nothing about Flask: it takes a :class:`ChatRequest` and returns either a
:class:`ChatResult` (non-stream) or a :class:`ChatStream` (an iterator of ready-to-send SSE
bytes). Failures *before* the first byte are raised as ``GatewayError``; failures after it are
turned into a final SSE error event by the stream itself.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from app.providers.kinds import PROVIDERS

if TYPE_CHECKING:
    from app.settings import Deployment, Settings


@dataclass(slots=True)
class ChatRequest:
    """A validated chat completion request as the client sent it."""

    body: dict[str, Any]  # the client's JSON body; fields the gateway does not know pass through
    model: str  # the client-facing model name
    request_id: str

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False
    cached_tokens: int = 0  # part of prompt_tokens served from the upstream's prompt cache

    @classmethod
    def from_openai(cls, data: Any) -> Usage | None:
        """Read OpenAI's ``usage`` object; None when it is absent or malformed."""
        if not isinstance(data, dict):
            return None
        try:
            prompt = int(data.get("prompt_tokens") or 0)
            completion = int(data.get("completion_tokens") or 0)
            total = int(data.get("total_tokens") or prompt + completion)
            details = data.get("prompt_tokens_details")
            cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        except (TypeError, ValueError, AttributeError):
            return None
        return cls(prompt, completion, total, cached_tokens=cached)


@dataclass(slots=True)
class ChatResult:
    """A complete non-stream answer: the JSON body to send as is, and what it cost."""

    body: bytes
    usage: Usage | None
    status: int = 200


class ChatStream:
    """An open upstream stream.

    Iterating yields SSE bytes ready to write to the client (one or more complete events per
    item). ``close()`` releases the upstream connection at once; the WSGI server calls it when
    the client goes away. ``usage`` is filled in when the upstream reports it.
    """

    __slots__ = ("_events", "usage", "completed", "_on_close")

    def __init__(self, events: Iterator[bytes] | None = None) -> None:
        self._events: Iterator[bytes] = events if events is not None else iter(())
        self.usage: Usage | None = None
        self.completed = False  # True once the upstream finished the stream properly
        self._on_close: list[Callable[[], None]] = []

    def attach(self, events: Iterator[bytes]) -> ChatStream:
        """Set the event iterator (for generators that need a reference to this stream)."""
        self._events = events
        return self

    def __iter__(self) -> Iterator[bytes]:
        return self._events

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the stream is closed, even if it was never iterated (a
        generator closed before its first item never runs its ``finally``)."""
        self._on_close.append(callback)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        for callback in self._on_close:
            callback()


class Provider(ABC):
    """One deployment's upstream. Instances live for the whole process and are shared."""

    kind: ClassVar[str]

    def __init__(self, deployment: Deployment, *, settings: Settings) -> None:
        self.deployment = deployment
        self.settings = settings

    @abstractmethod
    def complete(self, request: ChatRequest) -> ChatResult:
        """Send a non-stream request and return the answer; raise GatewayError on failure."""

    @abstractmethod
    def stream(self, request: ChatRequest) -> ChatStream:
        """Open a stream; raise GatewayError if it fails before its first event."""

    def close(self) -> None:  # noqa: B027 - optional hook: providers without pools need nothing
        """Release pooled connections (called at shutdown)."""


def build_provider(deployment: Deployment, *, settings: Settings) -> Provider:
    """Instantiate the provider class registered for ``deployment.provider``."""
    module_name, _, class_name = PROVIDERS[deployment.provider].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(deployment, settings=settings)
    return provider
