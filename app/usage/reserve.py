"""How much a request reserves on its budgets before its real cost is known.

The overshoot bound of a budget ("about one request's cost") holds only if a reservation is
not below the request's real cost: concurrent requests are admitted against each other's
reservations. The gateway's prompt estimate (about four characters per token) undercounts
long system prompts, code and non-English text, so the reservation scales it by what the
upstreams actually billed for this model: the ratio of reported to estimated prompt tokens,
as a moving average per model, never below 1, with a 25% margin, starting at 2 until the
model has answered. The completion part is the request's ``max_tokens`` when it sets one,
else twice the model's average completion (1,024 tokens until it has answered); none for
embeddings. The price is
the highest of the deployments the request may be routed to.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.pricing import Price
from app.providers.base import EMBEDDINGS, ChatRequest, Usage

ALPHA = 0.2  # weight of a new observation in the moving averages
MARGIN = 1.25
INITIAL_PROMPT_RATIO = 2.0
INITIAL_COMPLETION = 1024.0


class ReservationEstimator:
    """Upper estimates of a request's cost, learnt from the usage upstreams report."""

    def __init__(self) -> None:
        self._prompt_ratio: dict[str, float] = {}  # model -> billed / estimated prompt tokens
        self._completion: dict[str, float] = {}  # model -> average completion tokens

    def prompt_factor(self, model: str) -> float:
        ratio = self._prompt_ratio.get(model)
        return INITIAL_PROMPT_RATIO if ratio is None else max(1.0, ratio) * MARGIN

    def completion_tokens(self, model: str, request: ChatRequest) -> int:
        if request.api == EMBEDDINGS:
            return 0  # an embedding is billed by its input only
        if request.max_output_tokens is not None:
            return request.max_output_tokens
        return int(2 * self._completion.get(model, INITIAL_COMPLETION / 2))

    def reserve(self, request: ChatRequest, prices: Iterable[Price | None]) -> float:
        """USD to reserve for ``request`` routed to a deployment priced one of ``prices``."""
        known = [p for p in prices if p is not None]
        if not known:
            return 0.0
        prompt = int(request.prompt_tokens * self.prompt_factor(request.model)) + 1
        completion = self.completion_tokens(request.model, request)
        return max(p.estimate(prompt, completion) for p in known)

    def observe(self, model: str, request: ChatRequest, usage: Usage) -> None:
        """Learn from an answer whose usage the upstream reported."""
        if usage.estimated:
            return
        if request.prompt_tokens > 0 and usage.prompt_tokens > 0:
            self._prompt_ratio[model] = _ewma(self._prompt_ratio.get(model),
                                              usage.prompt_tokens / request.prompt_tokens)
        self._completion[model] = _ewma(self._completion.get(model),
                                        float(usage.completion_tokens))


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else ALPHA * sample + (1 - ALPHA) * previous
