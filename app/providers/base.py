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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from app.errors import GatewayError
from app.providers.kinds import PROVIDERS
from app.tokens import estimate_message_tokens

if TYPE_CHECKING:
    from app.settings import Deployment, Settings


# The client APIs (the usage record's ``api``), and the family of deployments each needs: the
# Messages and Responses APIs are served by every chat deployment, relayed as is where the
# upstream speaks them (Provider.speaks), translated to and from chat completions elsewhere.
CHAT_COMPLETIONS = "chat.completions"
MESSAGES = "messages"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"
COMPLETIONS = "completions"
FAMILY = {CHAT_COMPLETIONS: "chat", MESSAGES: "chat", RESPONSES: "chat",
          EMBEDDINGS: "embeddings", COMPLETIONS: "completions"}


def _requested_completion(body: dict[str, Any]) -> int | None:
    limit = body.get("max_completion_tokens") or body.get("max_tokens") \
        or body.get("max_output_tokens")
    return limit if type(limit) is int and limit > 0 else None


@dataclass(slots=True)
class ChatRequest:
    """A validated chat completion request as the client sent it.

    What every stage reads from the body is computed once, here: whether it streams, whether
    the client asked for stream usage, the requested completion size, and the gateway's prompt
    token estimate (rate limits, budget reservations, routing, the auto router and the usage
    record of an answer without reported usage all use this one number).
    """

    body: dict[str, Any]  # the client's JSON body; fields the gateway does not know pass through
    model: str  # the client-facing model name
    request_id: str
    prompt_tokens: int = -1  # the gateway's estimate; computed from the messages when not given
    api: str = CHAT_COMPLETIONS  # the client's API; ``body`` is then its chat translation
    native: dict[str, Any] | None = None  # the client's body in its own API (None: chat)
    stream: bool = field(init=False)
    include_usage: bool = field(init=False)
    max_output_tokens: int | None = field(init=False)  # max_completion_tokens or max_tokens

    def __post_init__(self) -> None:
        body = self.body
        self.stream = body.get("stream") is True
        opts = body.get("stream_options")
        self.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        self.max_output_tokens = _requested_completion(body)
        if self.prompt_tokens < 0:
            self.prompt_tokens = estimate_message_tokens(body.get("messages"))

    @property
    def requested_tokens(self) -> int:
        """Estimated prompt plus requested completion: what a TPM limit is charged up front."""
        return self.prompt_tokens + (self.max_output_tokens or 0)


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
    api: str = CHAT_COMPLETIONS  # the API ``body`` is in (a native relay: the client's)


class ChatStream:
    """An open upstream stream.

    Iterating yields SSE bytes ready to write to the client (one or more complete events per
    item). ``close()`` releases the upstream connection at once; the WSGI server calls it when
    the client goes away. ``usage`` is filled in when the upstream reports it. Whoever needs to
    know when the stream ends registers with :meth:`on_end` rather than wrapping the iterator:
    every wrapper is one more frame on the saved stack of every idle stream, and one more call
    per relayed event.
    """

    __slots__ = ("_events", "usage", "completed", "error", "_on_close", "_on_end", "_ended",
                 "api")

    def __init__(self, events: Iterator[bytes] | None = None, *,
                 api: str = CHAT_COMPLETIONS) -> None:
        self._events: Iterator[bytes] = events if events is not None else iter(())
        self.api = api  # the API the events are in (a native relay: the client's)
        self.usage: Usage | None = None
        self.completed = False  # True once the upstream finished the stream properly
        # Set when the stream failed after it began (it then ends with an SSE error event):
        # the request's outcome carries this error's code and status.
        self.error: GatewayError | None = None
        self._on_close: list[Callable[[], None]] = []
        self._on_end: list[Callable[[bool], None]] = []
        self._ended = False

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

    def on_end(self, callback: Callable[[bool], None]) -> None:
        """Run ``callback(failed)`` once when the stream ends: ``failed`` is True when the
        upstream broke it after it began (it then ended with an SSE error event)."""
        self._on_end.append(callback)

    def close(self) -> None:
        """The response is over (its last byte written, or the client gone): release the
        upstream and report the end, once."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        if not self._ended:
            self._ended = True
            for ended in self._on_end:
                ended(self.error is not None)
        for closed in self._on_close:
            closed()


class Provider(ABC):
    """One deployment's upstream. Instances live for the whole process and are shared."""

    kind: ClassVar[str]

    def __init__(self, deployment: Deployment, *, settings: Settings) -> None:
        self.deployment = deployment
        self.settings = settings

    def speaks(self, api: str) -> bool:
        """Whether this upstream takes ``api`` (a :data:`FAMILY` key other than chat) as is:
        the request's ``native`` body is then relayed, and the answer is in that API."""
        return False

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
