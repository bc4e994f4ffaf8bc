"""Turn finished chat requests into usage records with cost; price lookups for headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.observability import RequestRecord
from app.providers.base import Usage
from app.settings import Deployment
from app.tokens import estimate_message_tokens
from app.usage.budgets import BudgetService
from app.usage.pricing import Price, PriceTable
from app.usage.writer import UsageRecord, UsageWriter

CHAT_ROUTE = "/v1/chat/completions"


def price_override(deployment: Deployment) -> Price | None:
    """The deployment's own price from the config, if it sets one."""
    inp = getattr(deployment, "input_cost_per_mtok", None)
    out = getattr(deployment, "output_cost_per_mtok", None)
    if inp is None and out is None:
        return None
    return Price(inp or 0.0, out or 0.0, getattr(deployment, "cached_input_cost_per_mtok", None))


class UsageService:
    def __init__(self, *, writer: UsageWriter | None, prices: PriceTable,
                 deployment: Callable[[str], Deployment | None],
                 group: Callable[[str], list[Deployment]] | None = None,
                 budgets: BudgetService | None = None) -> None:
        self.writer = writer
        self.prices = prices
        self.deployment = deployment  # id -> Deployment (the registry can change at runtime)
        self.group = group  # model name -> its deployments
        self.budgets = budgets

    def estimate(self, model: str, body: dict[str, Any]) -> float:
        """An upper estimate of a request's cost, before a deployment is chosen: the prompt
        estimate plus the requested max tokens at the group's highest prices."""
        deployments = self.group(model) if self.group else []
        prices = [p for d in deployments
                  if (p := self.prices.lookup(d.provider, d.model, price_override(d)))]
        if not prices:
            return 0.0
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        if not isinstance(completion, int) or isinstance(completion, bool):
            completion = 0
        prompt = estimate_message_tokens(body.get("messages"))
        return max(p.cost(Usage(prompt, completion, prompt + completion)) for p in prices)

    def price(self, deployment_id: str | None) -> Price | None:
        dep = self.deployment(deployment_id) if deployment_id else None
        if dep is None:
            return None
        return self.prices.lookup(dep.provider, dep.model, price_override(dep))

    def cost(self, deployment_id: str | None, usage: Usage | None) -> tuple[float, bool]:
        return self.prices.cost(usage, self.price(deployment_id))

    def finished(self, rec: RequestRecord, duration: float) -> UsageRecord | None:
        """Build and queue the usage record of a chat request (None for other requests)."""
        if rec.route != CHAT_ROUTE or rec.key_id is None:
            return None
        usage = rec.usage
        if usage is None and rec.deployment is not None:
            # No usage from the upstream (or the client left): estimate, and say so.
            prompt = estimate_message_tokens(rec.messages)
            usage = Usage(prompt, rec.content_events, prompt + rec.content_events,
                          estimated=True)
        if rec.cache == "hit":
            cost, known = 0.0, True  # served from the cache: no upstream spend
        elif rec.cost is not None and rec.usage is not None:
            cost, known = rec.cost  # computed for the x-neuroroute-cost header already
        else:
            cost, known = self.cost(rec.deployment, usage)
        dep = self.deployment(rec.deployment) if rec.deployment else None
        record = UsageRecord(
            request_id=rec.request_id, created_at=time.time(), key_id=rec.key_id,
            user_id=rec.user_id, team_id=rec.team_id, model=rec.model,
            deployment=rec.deployment, provider=dep.provider if dep else None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            estimated=usage.estimated if usage else False,
            cost=cost, price_known=known, latency_ms=round(duration * 1000, 3),
            ttft_ms=None if rec.ttft_seconds is None else round(rec.ttft_seconds * 1000, 3),
            status=rec.status, error_code=rec.error_code, stream=rec.stream,
            cache_hit=rec.cache == "hit", cancelled=rec.cancelled, attempts=rec.attempts,
            route=rec.route_decision)
        if self.budgets is not None:
            self.budgets.settle(rec.budget_reservation, cost)
        if self.writer is not None:
            self.writer.put(record)
        return record
