"""Send a chat request to a deployment of the requested model group."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import ModelNotFoundError
from app.providers.base import ChatRequest, ChatResult, ChatStream
from app.routing.registry import ModelRegistry
from app.settings import Deployment


@dataclass(slots=True)
class Outcome:
    """What the dispatcher produced and which deployment produced it."""

    deployment: Deployment
    result: ChatResult | None = None
    stream: ChatStream | None = None
    attempts: int = 1


class Dispatcher:
    def __init__(self, *, registry: ModelRegistry) -> None:
        self.registry = registry

    def chat(self, request: ChatRequest) -> Outcome:
        """Pick a deployment and call it. Raises GatewayError before any byte is sent."""
        group = self.registry.get(request.model)
        if group is None:
            raise ModelNotFoundError(request.model)
        provider = self.registry.choose(group)
        if request.stream:
            return Outcome(provider.deployment, stream=provider.stream(request))
        return Outcome(provider.deployment, result=provider.complete(request))
