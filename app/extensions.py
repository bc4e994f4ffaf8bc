"""The process-wide services, built once in ``create_app`` and reached through the app.

Blueprints get them with :func:`gateway`; tests build an app with their own settings (and
hence their own services) through the factory, so nothing here is a module-level global.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask, current_app

from app.auth.service import Authenticator
from app.providers.base import build_provider
from app.routing.cooldown import build_breaker
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.routing.state import RoutingState
from app.settings import Settings

EXTENSION_KEY = "neuroroute"


@dataclass(slots=True)
class Gateway:
    settings: Settings
    registry: ModelRegistry
    dispatcher: Dispatcher
    authenticator: Authenticator
    started_at: float = field(default_factory=time.time)

    def swap_registry(self, registry: ModelRegistry) -> None:
        """Install a rebuilt registry (deployments changed at runtime).

        The dispatcher uses it from the next request on; routing state (in-flight counts,
        latency averages, breakers) is keyed by deployment id, so surviving deployments keep
        theirs. Requests already running finish on the providers they started with.
        """
        self.registry = registry
        self.dispatcher.registry = registry


def init_gateway(app: Flask, settings: Settings) -> Gateway:
    registry = ModelRegistry(build_provider(d, settings=settings) for d in settings.deployments)
    routing = settings.routing
    # Runtime routing state is per process and outlives registry swaps (keyed by deployment id).
    dispatcher = Dispatcher(
        registry=registry, routing=routing,
        state=RoutingState(alpha=routing.latency_ewma_alpha),
        breaker=build_breaker(routing.cooldown, redis_url=settings.redis_url,
                              prefix=settings.redis_key_prefix))
    gw = Gateway(
        settings=settings,
        registry=registry,
        dispatcher=dispatcher,
        authenticator=Authenticator(master_key=settings.master_key),
    )
    app.extensions[EXTENSION_KEY] = gw
    return gw


def gateway() -> Gateway:
    gw: Gateway = current_app.extensions[EXTENSION_KEY]
    return gw
