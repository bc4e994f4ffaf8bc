"""The process-wide services, built once in ``create_app`` and reached through the app.

Blueprints get them with :func:`gateway`; tests build an app with their own settings (and
hence their own services) through the factory, so nothing here is a module-level global.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask, current_app

from app.auth.service import Authenticator
from app.cache import ModelListCache, ResponseCache
from app.observability import Observer
from app.providers.base import build_provider
from app.ratelimit import RateLimits, init_rate_limits
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.settings import Deployment, Settings
from app.usage.pricing import PriceTable
from app.usage.service import UsageService

EXTENSION_KEY = "neuroroute"


@dataclass(slots=True)
class Gateway:
    settings: Settings
    registry: ModelRegistry
    dispatcher: Dispatcher
    authenticator: Authenticator
    observer: Observer
    rate_limits: RateLimits
    cache: ResponseCache
    model_lists: ModelListCache
    usage: UsageService
    started_at: float = field(default_factory=time.time)


def init_gateway(app: Flask, settings: Settings) -> Gateway:
    """Build the services; call after the blueprints are registered (limits wrap the views)."""
    registry = ModelRegistry(build_provider(d, settings=settings) for d in settings.deployments)
    gw = Gateway(
        settings=settings,
        registry=registry,
        dispatcher=Dispatcher(registry=registry),
        authenticator=Authenticator(master_key=settings.master_key),
        observer=Observer(known_models={d.name for d in settings.deployments},
                          known_deployments={d.id for d in settings.deployments},
                          access_log_enabled=settings.access_log),
        rate_limits=init_rate_limits(app, settings),
        cache=ResponseCache(app, settings),
        model_lists=ModelListCache(app),
        usage=UsageService(writer=None, prices=PriceTable(),
                           deployment=lambda dep_id: _deployment(registry, dep_id)),
    )
    gw.observer.usage = gw.usage
    app.extensions[EXTENSION_KEY] = gw
    return gw


def _deployment(registry: ModelRegistry, dep_id: str) -> Deployment | None:
    for provider in registry.providers():
        if provider.deployment.id == dep_id:
            return provider.deployment
    return None


def gateway() -> Gateway:
    gw: Gateway = current_app.extensions[EXTENSION_KEY]
    return gw
