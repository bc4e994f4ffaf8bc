"""Model groups: every configured deployment, addressed by its client-facing name."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.pricing import Price, PriceTable
from app.providers.base import Provider
from app.settings import CachePolicy, Deployment


@dataclass(frozen=True, slots=True)
class ModelGroup:
    name: str
    providers: tuple[Provider, ...]
    weights: tuple[float, ...]
    owned_by: str
    # Family (chat, embeddings, completions) -> the deployments that serve it.
    serving: dict[str, tuple[Provider, ...]] = field(default_factory=dict)

    def serves(self, family: str) -> bool:
        return bool(self.serving.get(family))

    def choose(self, rng: random.Random) -> Provider:
        """Weighted random choice among the group's deployments."""
        if len(self.providers) == 1:
            return self.providers[0]
        return rng.choices(self.providers, weights=self.weights, k=1)[0]


class ModelRegistry:
    """Immutable view of the configured model groups, built once per process."""

    def __init__(self, providers: Iterable[Provider], *, prices: PriceTable | None = None,
                 rng: random.Random | None = None):
        grouped: dict[str, list[Provider]] = {}
        for provider in providers:
            grouped.setdefault(provider.deployment.name, []).append(provider)
        self._groups = {
            name: ModelGroup(
                name=name,
                providers=tuple(members),
                weights=tuple(p.deployment.weight for p in members),
                owned_by=members[0].deployment.provider
                if len({p.deployment.provider for p in members}) == 1 else "neuroroute",
                serving={family: tuple(p for p in members if family in p.deployment.endpoints)
                         for family in {f for p in members for f in p.deployment.endpoints}},
            )
            for name, members in grouped.items()
        }
        # Deployment id -> deployment: usage accounting looks one up per request.
        self._by_id = {p.deployment.id: p.deployment
                       for g in self._groups.values() for p in g.providers}
        # Each deployment's price, resolved once: routing and billing read this one value.
        table = prices or PriceTable()
        self._prices = {dep_id: table.for_deployment(dep) for dep_id, dep in self._by_id.items()}
        # A group is cached when one of its deployments (YAML or stored) says so.
        self._cache = {name: next(p.deployment.cache for p in g.providers if p.deployment.cache)
                       for name, g in self._groups.items()
                       if any(p.deployment.cache for p in g.providers)}
        self._rng = rng or random.Random()

    def names(self) -> list[str]:
        return list(self._groups)

    def get(self, name: str) -> ModelGroup | None:
        return self._groups.get(name)

    def deployment(self, deployment_id: str) -> Deployment | None:
        return self._by_id.get(deployment_id)

    def cache_policy(self, name: str) -> CachePolicy | None:
        """The response-cache policy of the group ``name`` (None: not cached)."""
        return self._cache.get(name)

    def price(self, deployment_id: str) -> Price | None:
        """The deployment's price per million tokens (None: unknown)."""
        return self._prices.get(deployment_id)

    def groups(self) -> list[ModelGroup]:
        return list(self._groups.values())

    def choose(self, group: ModelGroup) -> Provider:
        return group.choose(self._rng)

    def providers(self) -> list[Provider]:
        return [p for g in self._groups.values() for p in g.providers]
