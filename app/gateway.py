"""Wiring: the process's services, built once from Settings in ``create_app``.

Every service gets what it depends on here, as keyword arguments; nothing is looked up from
a global or carried on ``flask.g``. Blueprints reach the :class:`Gateway` through
:func:`gateway`; tests build an app with their own settings (and fakes, passed to
:func:`build_gateway`) through the factory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event

from app.admission.quota import MemoryQuotaStore
from app.admission.redis_quota import RedisQuotaStore
from app.admission.service import Admission, QuotaConfig
from app.auth.keys import KeyCache, KeyLookup, KeyRecord, LastUsedTracker
from app.auth.service import Authenticator
from app.auth.sessions import ConsoleSessions
from app.cache import ModelListCache, ResponseCache
from app.chat.accounting import Accounting
from app.chat.responses import ResponsesService
from app.chat.responses_store import ResponseStore
from app.chat.service import ChatService
from app.db import repo
from app.db.engine import Database
from app.metrics import DB_STATEMENTS, Labels, Recorder
from app.pricing import PriceTable
from app.providers.base import Provider, build_provider
from app.routing.cooldown import CircuitBreaker, RedisCooldownStore
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.routing.state import RoutingState
from app.settings import Deployment, Settings
from app.sync import RedisAnnouncer, StateSync
from app.usage import store as usage_store
from app.usage.budgets import BudgetService
from app.usage.reserve import ReservationEstimator
from app.usage.writer import UsageWriter

EXTENSION_KEY = "neuroroute"
log = logging.getLogger(__name__)
# A dead Redis must cost milliseconds, not seconds, before the in-memory fallback takes over;
# no client-side retries: the callers fall back instead.
REDIS_TIMEOUT_S = 0.25


@dataclass(slots=True)
class Gateway:
    """The process's services; blueprints reach it through :func:`gateway`."""

    settings: Settings
    db: Database
    dispatcher: Dispatcher
    authenticator: Authenticator
    chat: ChatService
    responses: ResponsesService
    admission: Admission
    cache: ResponseCache
    model_lists: ModelListCache
    budgets: BudgetService
    sync: StateSync
    recorder: Recorder
    labels: Labels
    prices: PriceTable
    sessions: ConsoleSessions  # the operator console's session cookies
    key_cache: KeyCache | None = None  # the database-backed authenticator's cache
    # Deployments stored through the admin API, as last loaded (the YAML ones are in settings).
    db_deployments: tuple[Deployment, ...] = ()
    started_at: float = field(default_factory=time.time)

    @property
    def usage_writer(self) -> UsageWriter | None:
        """The batched usage writer (None: usage recording is off)."""
        return self.chat.accounting.writer

    @property
    def registry(self) -> ModelRegistry:
        """The current model registry (swapped when deployments change)."""
        return self.dispatcher.registry

    def reload_registry(self) -> None:
        """Rebuild the registry from YAML + stored deployments and swap it in."""
        with self.db.session() as session:
            stored = tuple(repo.load_deployments(session))
        self.rebuild_registry(stored)

    def rebuild_registry(self, stored: Sequence[Deployment]) -> None:
        """Build a registry from YAML + ``stored`` deployments and swap it in.

        Providers of unchanged deployments are reused (with their connection pools, so streams
        in flight are not disturbed); dropped ones are left to finish their streams and be
        garbage-collected.
        """
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
        self.swap_registry(ModelRegistry(providers, prices=self.prices))

    def swap_registry(self, registry: ModelRegistry) -> None:
        """Install a rebuilt registry (deployments changed at runtime).

        The dispatcher uses it from the next request on; routing state (in-flight counts,
        latency averages, breakers) is keyed by deployment id, so surviving deployments keep
        theirs. The assignments run without a yield in between.
        """
        self.dispatcher.registry = registry
        # Metrics label only configured names: stored deployments count as configured.
        providers = registry.providers()
        self.labels.models = {p.deployment.name for p in providers}
        self.labels.deployments = {p.deployment.id for p in providers}
        self.model_lists.clear()

    def keys_changed(self) -> None:
        """Another process changed keys, users or teams: forget what this one cached."""
        if self.key_cache is not None:
            self.key_cache.clear()
        self.budgets.forget_entities()


def _key_lookup(db: Database) -> KeyLookup:
    def lookup(digest: str) -> KeyRecord | None:
        """The key with this hash, read in its own short transaction."""
        with db.session() as session:
            return repo.find_key_record(session, digest)

    return lookup


def _count_statements(db: Database, recorder: Recorder) -> None:
    """Count SQL statements sent through SQLAlchemy (``neuroroute_db_statements_total``)."""

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        recorder.inc(DB_STATEMENTS, (statement.lstrip()[:6].lower(),))

    event.listen(db.engine, "before_cursor_execute", before)


def redis_client(url: str) -> redis.Redis:
    """The client admission, breakers and budget seeding share (one connection pool)."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                socket_connect_timeout=REDIS_TIMEOUT_S,
                                retry=Retry(NoBackoff(), 0))


def build_gateway(app: Flask, settings: Settings, *,
                  authenticator: Authenticator | None = None) -> Gateway:
    """Build the services from Settings and attach them to ``app``.

    ``authenticator`` replaces the database-backed one (tests hand in a fake key table).
    """
    db = Database.from_settings(settings)
    recorder = Recorder()
    _count_statements(db, recorder)
    prices = PriceTable()
    registry = ModelRegistry((build_provider(d, settings=settings) for d in settings.deployments),
                             prices=prices)
    labels = Labels(models={d.name for d in settings.deployments},
                    deployments={d.id for d in settings.deployments})
    last_used = LastUsedTracker()
    key_cache = KeyCache(ttl=settings.key_cache_ttl)
    authenticator = authenticator or Authenticator(
        master_key=settings.master_key, lookup=_key_lookup(db), cache=key_cache,
        last_used=last_used)
    shared = redis_client(settings.redis_url) if settings.redis_url else None
    routing = settings.routing
    breaker = CircuitBreaker(routing.cooldown, store=RedisCooldownStore(
        shared, prefix=settings.redis_namespace) if shared is not None else None)
    # Runtime routing state is per process and outlives registry swaps (keyed by deployment id).
    dispatcher = Dispatcher(registry=registry, routing=routing,
                            state=RoutingState(alpha=routing.latency_ewma_alpha), breaker=breaker)
    budgets = BudgetService(
        spend_since=lambda kind, entity, since: usage_store.spend_since(
            db, kind=kind, entity_id=entity, since=since),
        entity_budget=lambda kind, entity: usage_store.entity_budget(db, kind, entity),
        refresh_interval=settings.budget_refresh_interval, soft_ratio=settings.soft_budget_ratio)
    admission = Admission(
        config=QuotaConfig(default_rpm=settings.default_rpm, default_tpm=settings.default_tpm,
                           namespace=settings.redis_namespace),
        budgets=budgets, memory=MemoryQuotaStore(settings.ratelimit_strategy),
        redis_store=RedisQuotaStore(shared, strategy=settings.ratelimit_strategy)
        if shared is not None else None)
    writer = UsageWriter(usage_store.usage_sink(db), max_queue=settings.usage_queue_max,
                         batch_size=settings.usage_batch_size,
                         interval=settings.usage_flush_interval) \
        if settings.usage_enabled else None
    estimator = ReservationEstimator()
    cache = ResponseCache(app, settings)
    accounting = Accounting(admission=admission, estimator=estimator, writer=writer,
                            recorder=recorder, labels=labels,
                            deployment=lambda dep_id: dispatcher.registry.deployment(dep_id),
                            price=lambda dep_id: dispatcher.registry.price(dep_id))
    chat = ChatService(dispatcher=dispatcher, admission=admission, cache=cache,
                       estimator=estimator, accounting=accounting)

    def on_keys_changed() -> None:
        gw.keys_changed()

    def on_deployments_changed() -> None:
        gw.reload_registry()

    sync = StateSync(db=db, interval=settings.sync_interval,
                     flush_interval=settings.last_used_flush_interval, last_used=last_used,
                     on_keys_changed=on_keys_changed, on_deployments_changed=on_deployments_changed,
                     announcer=RedisAnnouncer(settings.redis_url) if settings.redis_url else None)
    responses = ResponsesService(store=ResponseStore(
        db=db, retention_days=settings.responses_retention_days))
    gw = Gateway(settings=settings, db=db, dispatcher=dispatcher, authenticator=authenticator,
                 chat=chat, admission=admission, cache=cache, model_lists=ModelListCache(app),
                 responses=responses, budgets=budgets, sync=sync, recorder=recorder,
                 labels=labels, prices=prices,
                 sessions=ConsoleSessions(authenticator=authenticator,
                                          master_key=settings.master_key,
                                          secret_key=settings.secret_key,
                                          ttl=settings.console_session_ttl),
                 key_cache=key_cache)
    # Start with the stored deployments too. A database that is down (or not migrated yet)
    # leaves the YAML models serving; the next successful sync loads the rest.
    sync.refresh()
    app.extensions[EXTENSION_KEY] = gw
    return gw


def gateway() -> Gateway:
    """The current app's :class:`Gateway`."""
    gw: Gateway = current_app.extensions[EXTENSION_KEY]
    return gw
