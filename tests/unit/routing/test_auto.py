"""The auto router: classifier table, tier rules, capability/price choice, cost per request."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.errors import InvalidRequestError
from app.routing.auto import AutoDecision, AutoRouter, classify
from app.routing.dispatch import Dispatcher
from app.routing.registry import ModelRegistry
from app.settings import AutoRouterConfig, AutoRule, RoutingConfig
from tests.unit.routing.fakes import FakeProvider, dep, http_error, request

ROOT = Path(__file__).resolve().parents[3]


def user(text: str, **body: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **body}


IMAGE = {"messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(("body", "signals"), [
    (user("hello, how are you?"), set()),
    (user("Write a Python function that parses a CSV file."), {"code"}),
    (user("Fix this: ```x = [1, 2\nprint(x)```"), {"code"}),
    (user("Solve for x: 2x + 3 = 11"), {"math"}),
    (user("What is the derivative of x^2?"), {"math"}),
    (user("Prove that there are infinitely many primes."), {"math", "reasoning"}),
    (user("Design a distributed cache; discuss the trade-offs."), {"reasoning"}),
    (user("Compare tea and coffee for a morning routine."), {"analysis"}),
    (user("Weather in Paris?", tools=[TOOL]), {"tools"}),
    (IMAGE, {"images"}),
    (user("Extract the name.", response_format={"type": "json_object"}), {"json"}),
    (user("Improve this sentence: the cat sat."), set()),  # "improve" is not "prove"
])
def test_classifier_signals(body: dict[str, Any], signals: set[str]) -> None:
    features = classify(body)
    assert {name for name, on in features.signals().items() if on} == signals


def test_only_a_bounded_slice_of_a_long_prompt_is_scanned() -> None:
    middle = "prove the theorem " * 10_000  # cues deep inside a long document are not read
    features = classify(user("Summarise this report. " + "filler text. " * 400 + middle
                             + "filler text. " * 400))
    assert not features.reasoning
    assert features.tokens > 40_000


ROUTER = AutoRouter(AutoRouterConfig(name="auto"))


@pytest.mark.parametrize(("body", "tier"), [
    (user("thanks!"), "small"),
    (user("Translate 'good night' into French."), "small"),
    (user("Write a bash script that backs up my home directory."), "medium"),
    (user("Why does my React component render twice?"), "medium"),
    (IMAGE, "medium"),
    (user("Summarise: " + "The board met and agreed on a budget. " * 400), "medium"),
    (user("Prove that sqrt(3) is irrational."), "large"),
    (user("Think step by step about this scheduling puzzle."), "large"),
    (user("Here is the archive. " * 20_000), "large"),
])
def test_default_rules_pick_the_tier(body: dict[str, Any], tier: str) -> None:
    assert ROUTER.tier(classify(body))[0] == tier


def decide(body: dict[str, Any], providers: list[FakeProvider]) -> AutoDecision:
    """The router's decision with the registry's prices (the one price source)."""
    return ROUTER.decide(body, providers, price=ModelRegistry(providers).price)


def catalogue() -> list[FakeProvider]:
    return [
        FakeProvider(dep("small", "small", tier="small", capabilities=frozenset({"tools"}),
                         max_input_tokens=1_000, input_cost_per_mtok=0.1,
                         output_cost_per_mtok=0.4)),
        FakeProvider(dep("small-eye", "small-eye", tier="small",
                         capabilities=frozenset({"vision"}), input_cost_per_mtok=0.3,
                         output_cost_per_mtok=1.2)),
        FakeProvider(dep("medium", "medium", tier="medium",
                         capabilities=frozenset({"vision", "tools", "json"}),
                         input_cost_per_mtok=1, output_cost_per_mtok=4)),
        FakeProvider(dep("large", "large", tier="large",
                         capabilities=frozenset({"vision", "tools", "json"}),
                         input_cost_per_mtok=5, output_cost_per_mtok=20)),
        FakeProvider(dep("untiered", "untiered")),  # not part of the auto router
    ]


@pytest.mark.parametrize(("body", "chosen"), [
    (user("hi"), "small"),
    (user("hi", tools=[TOOL]), "medium"),  # tools push the tier to medium
    (IMAGE, "medium"),
    (user("hi " * 2_000), "small-eye"),  # too long for small's 1,000-token window
    (user("hi", response_format={"type": "json_object"}), "medium"),  # only medium+ do JSON
    (user("Prove Fermat's little theorem."), "large"),
])
def test_cheapest_capable_deployment_wins(body: dict[str, Any], chosen: str) -> None:
    decision = decide(body, catalogue())
    assert decision.candidates[0].deployment.id == chosen
    assert "untiered" not in [p.deployment.id for p in decision.candidates]


def test_price_orders_the_candidates_and_higher_tiers_serve_lower_ones() -> None:
    decision = decide(user("hi"), catalogue())
    assert [p.deployment.id for p in decision.candidates] == [
        "small", "small-eye", "medium", "large"]


def test_no_capable_deployment_is_a_400() -> None:
    text_only = [FakeProvider(dep("s", "s", tier="small"))]
    with pytest.raises(InvalidRequestError) as info:
        decide(IMAGE, text_only)
    assert info.value.code == "no_capable_deployment" and "vision" in info.value.message


def test_missing_tier_falls_back_to_the_most_able_available() -> None:
    only_small = [FakeProvider(dep("s", "s", tier="small"))]
    decision = decide(user("Prove that 7 is prime."), only_small)
    assert decision.tier == "large" and decision.candidates[0].deployment.id == "s"
    assert "no-large-available" in decision.reasons


def test_configured_rules_and_tiers() -> None:
    router = AutoRouter(AutoRouterConfig(
        name="smart", tiers=("cheap", "premium"), default_tier="cheap",
        rules=(AutoRule(tier="premium", keywords=("contract", "legal advice")),
               AutoRule(tier="premium", min_tokens=500, signals={"code": True}))))
    assert router.tier(classify(user("Review this contract clause.")))[0] == "premium"
    assert router.tier(classify(user("I need legal advice.")))[0] == "premium"
    assert router.tier(classify(user("Contracts are boring")))[0] == "cheap"  # whole words
    assert router.tier(classify(user("Write Python code.")))[0] == "cheap"  # < 500 tokens
    assert router.tier(classify(user("Python code " * 300)))[0] == "premium"


def test_dispatcher_walks_the_price_list_and_reports_the_decision() -> None:
    providers = catalogue()
    providers[0].script = [http_error(503)]  # the cheapest fails once
    d = Dispatcher(registry=ModelRegistry(providers),
                   routing=RoutingConfig(auto_routers=(AutoRouterConfig(name="auto"),)))
    outcome = d.chat(request("auto"))
    assert outcome.deployment.id == "small-eye" and outcome.attempts == 2
    assert outcome.decision is not None and outcome.decision.tier == "small"
    assert outcome.route == "auto; tier=small; reason=default; tokens=8"


def test_classifier_costs_well_under_a_millisecond() -> None:
    """Generous bound for CI machines; bench/routing_eval.py reports the real numbers."""
    rows = [json.loads(line) for line in
            (ROOT / "bench" / "data" / "routing_prompts.jsonl").read_text().splitlines()]
    bodies = [{"messages": r["messages"], **{k: r[k] for k in ("tools", "response_format")
                                             if k in r}} for r in rows]
    providers = catalogue()
    started = time.perf_counter()
    for body in bodies:
        decide(body, providers)
    mean = (time.perf_counter() - started) / len(bodies)
    assert mean < 0.001, f"{mean * 1e6:.0f} us per request"
