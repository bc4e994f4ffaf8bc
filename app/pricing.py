"""Prices per million tokens, and the cost of a request: the one price source.

Defaults cover common OpenAI and Anthropic models (list prices in USD per 1M tokens; dated
snapshot names such as ``gpt-4o-mini-2024-07-18`` match their family by prefix). A
deployment's own ``input_cost_per_mtok`` / ``output_cost_per_mtok`` /
``cached_input_cost_per_mtok`` override them. An unknown price costs 0 on the bill and is
flagged on the usage record, never an error.

Each deployment's price is resolved once, when the model registry is built
(:meth:`PriceTable.for_deployment`), and that one value serves the ``cheapest`` strategy, the
auto router's ranking, budget reservations and the bill alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.providers.base import Usage
from app.settings import Deployment


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: cached input costs the input price

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """USD for a request of this size (no cached input assumed)."""
        return (input_tokens * self.input_per_mtok
                + output_tokens * self.output_per_mtok) / 1_000_000

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_price = (self.input_per_mtok if self.cached_input_per_mtok is None
                        else self.cached_input_per_mtok)
        return ((usage.prompt_tokens - cached) * self.input_per_mtok
                + cached * cached_price
                + usage.completion_tokens * self.output_per_mtok) / 1_000_000


FREE = Price(0.0, 0.0, 0.0)


def ranking_cost(price: Price | None, input_tokens: int, output_tokens: int) -> float:
    """What a request of this size costs for ranking deployments by price: an unknown price
    ranks after every known one (it is not known to be cheap), unlike on the bill (0)."""
    return float("inf") if price is None else price.estimate(input_tokens, output_tokens)

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    # OpenAI embeddings (billed by input only) and legacy text completions
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "text-embedding-ada-002": Price(0.10, 0.0),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "davinci-002": Price(2.00, 2.00),
    "babbage-002": Price(0.40, 0.40),
    # Anthropic (cached input = cache reads)
    "claude-3-haiku": Price(0.25, 1.25, 0.03),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "claude-3-opus": Price(15.00, 75.00, 1.50),
    "claude-opus-4": Price(15.00, 75.00, 1.50),
}


class PriceTable:
    """Resolves the price of an upstream model: override, exact name, longest prefix."""

    def __init__(self, defaults: dict[str, Price] | None = None) -> None:
        self.defaults = DEFAULT_PRICES if defaults is None else defaults
        self._by_length = sorted(self.defaults, key=len, reverse=True)

    def lookup(self, provider: str, model: str,
               override: Price | None = None) -> Price | None:
        if override is not None:
            return override
        if provider == "mock":
            return FREE
        if model in self.defaults:
            return self.defaults[model]
        for name in self._by_length:
            if model.startswith(name + "-"):
                return self.defaults[name]
        return None

    def for_deployment(self, deployment: Deployment) -> Price | None:
        """The deployment's price: its own ``*_cost_per_mtok`` if it sets one, else the
        default for its upstream model (None: unknown)."""
        inp, out = deployment.input_cost_per_mtok, deployment.output_cost_per_mtok
        override = None
        if inp is not None or out is not None:
            override = Price(inp or 0.0, out or 0.0, deployment.cached_input_cost_per_mtok)
        return self.lookup(deployment.provider, deployment.model, override)

    @staticmethod
    def cost(usage: Usage | None, price: Price | None) -> tuple[float, bool]:
        """(cost in USD, whether the price was known)."""
        if usage is None or price is None:
            return 0.0, price is not None
        return price.cost(usage), True
