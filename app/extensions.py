"""The process-wide services, built once in ``create_app`` and reached through the app.

Blueprints get them with :func:`gateway`; tests build an app with their own settings (and
hence their own services) through the factory, so nothing here is a module-level global.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from flask import Flask, current_app

from app.auth.keys import KeyCache, KeyLookup, KeyRecord, LastUsedTracker
from app.auth.service import Authenticator
from app.cache import ModelListCache, ResponseCache
from app.db import repo
from app.db.engine import Database
from app.observability import Observer
from app.providers.base import Provider, build_provider
from app.ratelimit import RateLimits, init_rate_limits
from app.routing.cooldown import build_breaker
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.routing.state import RoutingState
from app.settings import Deployment, Settings
from app.sync import RedisAnnouncer, StateSync
from app.usage import store as usage_store
from app.usage.budgets import BudgetService
from app.usage.pricing import PriceTable
from app.usage.service import UsageService
from app.usage.writer import UsageWriter

EXTENSION_KEY = "neuroroute"
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Gateway:
    """The process's services; blueprints reach it through :func:`gateway`."""

    settings: Settings
    registry: ModelRegistry
    dispatcher: Dispatcher
    authenticator: Authenticator
    observer: Observer
    rate_limits: RateLimits
    cache: ResponseCache
    model_lists: ModelListCache
    usage: UsageService
    budgets: BudgetService
    db: Database
    sync: StateSync
    # Deployments stored through the admin API, as last loaded (the YAML ones are in settings).
    db_deployments: tuple[Deployment, ...] = ()
    started_at: float = field(default_factory=time.time)

    def reload_registry(self) -> None:
        """Rebuild the registry from YAML + stored deployments and swap it in.

        Providers of unchanged deployments are reused (with their connection pools, so streams
        in flight are not disturbed); dropped ones are left to finish their streams and be
        garbage-collected. The two assignments run without a yield in between, so no
        greenlet sees the registry and the dispatcher disagree.
        """
        with self.db.session() as session:
            stored = tuple(repo.load_deployments(session))
        self.rebuild_registry(stored)

    def rebuild_registry(self, stored: Sequence[Deployment]) -> None:
        """Build a registry from YAML + ``stored`` deployments and swap it in."""
        current = {p.deployment.id: p for p in self.registry.providers()}
        providers: list[Provider] = []
        yaml_ids = {d.id for d in self.settings.deployments}
        for dep in (*self.settings.deployments, *(d for d in stored if d.id not in yaml_ids)):
            old = current.get(dep.id)
            if old is not None and old.deployment == dep:
                providers.append(old)
                continue
            try:
                providers.append(build_provider(dep, settings=self.settings))
            except Exception:  # noqa: BLE001 - one bad stored deployment must not stop the rest
                log.exception("cannot build stored deployment; it is skipped",
                              extra={"deployment": dep.id})
        self.db_deployments = tuple(stored)
        self.swap_registry(ModelRegistry(providers))

    def swap_registry(self, registry: ModelRegistry) -> None:
        """Install a rebuilt registry (deployments changed at runtime).

        The dispatcher uses it from the next request on; routing state (in-flight counts,
        latency averages, breakers) is keyed by deployment id, so surviving deployments keep
        theirs. Requests already running finish on the providers they started with. The
        assignments run without a yield in between, so no greenlet sees the registry and the
        dispatcher disagree.
        """
        self.registry = registry
        self.dispatcher.registry = registry
        # Metrics label only configured names: stored deployments count as configured.
        providers = registry.providers()
        self.observer.known_models = {p.deployment.name for p in providers}
        self.observer.known_deployments = {p.deployment.id for p in providers}
        self.model_lists.clear()


def _key_lookup(db: Database) -> KeyLookup:
    def lookup(digest: str) -> KeyRecord | None:
        """The key with this hash, read in its own short transaction."""
        with db.session() as session:
            return repo.find_key_record(session, digest)

    return lookup


def init_gateway(app: Flask, settings: Settings) -> Gateway:
    """Build the services from Settings and attach them to ``app``.

    Call after the blueprints are registered: the rate limits wrap the chat view.
    """
    db = Database.from_settings(settings)
    registry = ModelRegistry(build_provider(d, settings=settings) for d in settings.deployments)
    last_used = LastUsedTracker()
    authenticator = Authenticator(master_key=settings.master_key, lookup=_key_lookup(db),
                                  cache=KeyCache(ttl=settings.key_cache_ttl),
                                  last_used=last_used)

    def reload_registry() -> None:
        """Called by the sync loop when the deployments counter moved."""
        gw.reload_registry()

    sync = StateSync(db=db, interval=settings.sync_interval,
                     flush_interval=settings.last_used_flush_interval, last_used=last_used,
                     on_keys_changed=authenticator.cache.clear,
                     on_deployments_changed=reload_registry,
                     announcer=RedisAnnouncer(settings.redis_url) if settings.redis_url else None)
    routing = settings.routing
    # Runtime routing state is per process and outlives registry swaps (keyed by deployment id).
    dispatcher = Dispatcher(
        registry=registry, routing=routing,
        state=RoutingState(alpha=routing.latency_ewma_alpha),
        breaker=build_breaker(routing.cooldown, redis_url=settings.redis_url,
                              prefix=settings.redis_namespace))
    budgets = BudgetService(
        spend_since=lambda kind, entity, since: usage_store.spend_since(
            db, kind=kind, entity_id=entity, since=since),
        entity_budget=lambda kind, entity: usage_store.entity_budget(db, kind, entity),
        redis_url=settings.redis_url, namespace=settings.redis_namespace,
        refresh_interval=settings.budget_refresh_interval,
        soft_ratio=settings.soft_budget_ratio)
    gw = Gateway(
        settings=settings,
        registry=registry,
        dispatcher=dispatcher,
        authenticator=authenticator,
        observer=Observer(known_models={d.name for d in settings.deployments},
                          known_deployments={d.id for d in settings.deployments},
                          access_log_enabled=settings.access_log),
        rate_limits=init_rate_limits(app, settings),
        cache=ResponseCache(app, settings),
        model_lists=ModelListCache(app),
        usage=UsageService(
            writer=UsageWriter(usage_store.usage_sink(db),
                               max_queue=settings.usage_queue_max,
                               batch_size=settings.usage_batch_size,
                               interval=settings.usage_flush_interval)
            if settings.usage_enabled else None,
            prices=PriceTable(),
            deployment=lambda dep_id: gw.registry.deployment(dep_id),
            group=lambda name: _group(gw.registry, name),
            budgets=budgets),
        budgets=budgets,
        db=db,
        sync=sync,
    )
    gw.observer.usage = gw.usage
    # Start with the stored deployments too. A database that is down (or not migrated yet)
    # leaves the YAML models serving; the next successful sync loads the rest.
    sync.refresh()
    app.extensions[EXTENSION_KEY] = gw
    return gw


def _group(registry: ModelRegistry, name: str) -> list[Deployment]:
    group = registry.get(name)
    return [p.deployment for p in group.providers] if group is not None else []


def gateway() -> Gateway:
    """The current app's :class:`Gateway`."""
    gw: Gateway = current_app.extensions[EXTENSION_KEY]
    return gw
