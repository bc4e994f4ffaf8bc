"""Score the auto router against the labelled prompts in bench/data/routing_prompts.jsonl.

    .venv/bin/python bench/routing_eval.py [--config bench/data/routing_models.yaml]

Prints agreement with the labels (overall, per tier, per category), the confusion matrix,
the classifier's time per request (classification + candidate ranking: mean and p99), and
the estimated cost of routing versus always sending to the most expensive model. Costs use
the gateway's token estimate for the prompt and the router's ``expected_output_tokens``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.pricing import ranking_cost  # noqa: E402 - after the path tweak above
from app.providers.base import build_provider  # noqa: E402
from app.routing.auto import AutoRouter  # noqa: E402
from app.routing.registry import ModelRegistry  # noqa: E402
from app.settings import Settings, load_config_file  # noqa: E402

DATA = ROOT / "bench" / "data" / "routing_prompts.jsonl"
CONFIG = ROOT / "bench" / "data" / "routing_models.yaml"


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The labelled prompts, one JSON object per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def body_of(row: dict[str, Any]) -> dict[str, Any]:
    """The chat completion body a client would send for a labelled row."""
    body = {"model": "auto", "messages": row["messages"]}
    for key in ("tools", "response_format"):
        if key in row:
            body[key] = row[key]
    return body


def evaluate(config: Path, data: Path, repeat: int) -> dict[str, Any]:
    """Route every prompt (timing ``repeat`` runs each) and collect the statistics."""
    deployments, routing = load_config_file(config, {})
    settings = Settings(master_key="unused-key", config_path=config, deployments=deployments)
    providers = [build_provider(d, settings=settings) for d in deployments]
    registry = ModelRegistry(providers)  # the one price source, as the gateway uses it
    router = AutoRouter(routing.auto_routers[0])
    largest = max(deployments, key=lambda d: (d.output_cost_per_mtok or 0,
                                              d.input_cost_per_mtok or 0))
    out_tokens = router.config.expected_output_tokens
    rows = load_rows(data)
    timings: list[float] = []
    confusion: Counter[tuple[str, str]] = Counter()
    holdout: Counter[tuple[str, str]] = Counter()
    by_category: dict[str, list[bool]] = defaultdict(list)
    routed_cost = largest_cost = 0.0
    served: Counter[str] = Counter()
    for row in rows:
        body = body_of(row)
        for _ in range(repeat):
            started = time.perf_counter()
            decision = router.decide(body, providers, price=registry.price)
            timings.append(time.perf_counter() - started)
        confusion[(row["expected_tier"], decision.tier)] += 1
        if row.get("split") == "holdout":
            holdout[(row["expected_tier"], decision.tier)] += 1
        by_category[row["category"]].append(decision.tier == row["expected_tier"])
        chosen = decision.candidates[0].deployment
        served[chosen.name] += 1
        tokens = decision.features.tokens
        routed_cost += ranking_cost(registry.price(chosen.id), tokens, out_tokens)
        largest_cost += ranking_cost(registry.price(largest.id), tokens, out_tokens)
    timings.sort()
    return {"rows": rows, "confusion": confusion, "holdout": holdout, "by_category": by_category,
            "tiers": router.config.tiers, "timings": timings, "routed_cost": routed_cost,
            "largest_cost": largest_cost, "largest": largest.name, "served": served}


def agreement(confusion: Counter[tuple[str, str]]) -> str:
    """``hits/total = percent`` for a confusion counter."""
    total = sum(confusion.values())
    agree = sum(n for (want, got), n in confusion.items() if want == got)
    return f"{agree}/{total} = {agree / max(total, 1):.1%}"


def print_confusion(title: str, confusion: Counter[tuple[str, str]], tiers: list[str]) -> None:
    """Print a label-by-prediction table."""
    print(f"\n{title} (rows: label, columns: router)")
    print(f"{'':>10}" + "".join(f"{t:>9}" for t in tiers))
    for want in tiers:
        print(f"{want:>10}" + "".join(f"{confusion[(want, got)]:>9}" for got in tiers))


def report(result: dict[str, Any]) -> None:
    """Print agreement, confusion, timing and cost."""
    rows, confusion, tiers = result["rows"], result["confusion"], result["tiers"]
    holdout = result["holdout"]
    tuning = Counter({k: v - holdout[k] for k, v in confusion.items()})
    print(f"prompts: {len(rows)}   agreement with labels: {agreement(confusion)}")
    print(f"  tuning split (cue lists were tuned on it): {agreement(tuning)}")
    print(f"  held-out split (written after tuning, never tuned on): {agreement(holdout)}")
    print_confusion("confusion, all prompts", confusion, tiers)
    print_confusion("confusion, held-out prompts", holdout, tiers)
    print("\nper tier: agreement")
    for want in tiers:
        total = sum(confusion[(want, got)] for got in tiers)
        print(f"  {want:>8}: {confusion[(want, want)]}/{total}")
    print("\nper category: agreement")
    for category, hits in sorted(result["by_category"].items()):
        print(f"  {category:>16}: {sum(hits)}/{len(hits)}")
    timings = result["timings"]
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    print(f"\nclassifier + ranking per request: mean {statistics.mean(timings) * 1e6:.1f} us, "
          f"p99 {p99 * 1e6:.1f} us, max {timings[-1] * 1e6:.1f} us ({len(timings)} runs)")
    routed, largest = result["routed_cost"], result["largest_cost"]
    print(f"\nestimated cost for the {len(rows)} prompts: routed ${routed:.4f} vs always "
          f"'{result['largest']}' ${largest:.4f} -> {routed / largest:.1%} of the cost "
          f"({1 - routed / largest:.1%} saved)")
    print("served by: " + ", ".join(f"{k} {v}" for k, v in result["served"].most_common()))


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeat", type=int, default=20, help="timing runs per prompt")
    args = parser.parse_args()
    report(evaluate(args.config, args.data, args.repeat))


if __name__ == "__main__":
    main()
