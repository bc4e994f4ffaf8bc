"""The auto router: ``model: "auto"`` classifies the prompt and picks the cheapest fit.

The classifier is a handful of substring/regex checks over a bounded slice of the prompt, so
it costs well under a millisecond (``bench/routing_eval.py`` measures it). It yields
:class:`Features`; the router's rules turn them into the minimum capability tier, and the
needed capabilities (vision, tools, json) and context size filter the deployments. Of the
deployments at that tier or above, the cheapest for this request's size wins; the others
follow in price order as retry candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequestError
from app.pricing import Price, ranking_cost
from app.providers.base import Provider
from app.settings import AutoRouterConfig, AutoRule
from app.tokens import estimate_message_tokens

# Only this much of the prompt is scanned for cues: the start of the system prompt and the
# head and tail of the last user message, where the task is stated. Keeps the cost bounded
# for 100k-token prompts (whose size alone already decides the tier).
SCAN_SYSTEM_CHARS = 1_500
SCAN_HEAD_CHARS = 3_000
SCAN_TAIL_CHARS = 1_500

# Cues, matched as whole words (after punctuation becomes spaces) or, for phrases and
# symbols, as substrings. Set lookups and substring search run in C: far cheaper than regex
# alternations over kilobytes of prompt.
_CODE_WORDS = frozenset("""
python javascript js typescript java golang rust c++ c# kotlin swift ruby php sql bash shell
regex dockerfile docker kubernetes k8s yaml html css react django flask numpy pandas compile
compiler traceback segfault refactor debug debugging code coding function functions script
api async await recursion algorithm algorithms git curl http struct pointer pointers method
variable bug exception exceptions array vector implement implementation endpoint nginx repo
rebase npm pip mutex thread threads concurrency concurrent lock-free queue unhashable
""".split())
_CODE_PHRASES = ("```", "def ", "#include", "=>", "()", "stack trace", "unit test",
                 "null pointer", "regular expression", "data structure", "big-o",
                 "linked list", "binary search", "b-tree", "error:", "typeerror")
_MATH_WORDS = frozenset("""
integral integrate derivative differentiate eigenvalue eigenvalues matrix matrices determinant
polynomial irrational prime primes probability variance combinatorics permutation
permutations modulo converge converges convergence diverges series logarithm log equation
equations inequality geometry triangle calculus algebra solve sequence divisible integer
integers binomial distribution roots
""".split())
_MATH_PHRASES = ("expected value", "limit of", "square root", "compound interest", "log base",
                 "\\frac", "\\sum", "\\int", "∑", "∫", "√", "≤", "≥")
_MATH_SYMBOLS = re.compile(r"\d\s*[*/^=]\s*\d|[a-z]\^\d")
# Deep reasoning: proofs, rigorous derivations, design with trade-offs, puzzles.
_REASONING_WORDS = frozenset("""
prove proof theorem lemma rigorous rigorously architecture tradeoffs tradeoff puzzle riddle
justify equilibrium linearizable correctness idempotency methodology derive
""".split())
_REASONING_PHRASES = ("step by step", "step-by-step", "think carefully", "think through",
                      "reason through", "trade-off", "in depth", "in-depth", "failure modes",
                      "design a ", "design an ", "zero downtime", "show that")
# Light analysis: explanations, comparisons, critiques, longer-form writing.
_ANALYSIS_WORDS = frozenset("""
compare comparison versus analyze analyse analysis evaluate critique assess explain why causes
difference pros cons implications plan strategy themes argument essay blog letter
""".split())
_ANALYSIS_PHRASES = ("what would happen",)
_PUNCTUATION = str.maketrans({c: " " for c in "!\"$%&'()*,./:;<=>?@[\\]^_`{|}~"})


def _cue(words: frozenset[str], text: str, vocabulary: frozenset[str],
         phrases: tuple[str, ...]) -> bool:
    return not vocabulary.isdisjoint(words) or any(p in text for p in phrases)


# Used when a router's YAML gives no ``rules``; tiers here are the default small/medium/large.
DEFAULT_RULES: tuple[AutoRule, ...] = (
    AutoRule(tier="large", min_tokens=16_000),
    AutoRule(tier="large", signals={"reasoning": True}),
    AutoRule(tier="medium", min_tokens=2_500),
    AutoRule(tier="medium", signals={"code": True}),
    AutoRule(tier="medium", signals={"math": True}),
    AutoRule(tier="medium", signals={"analysis": True}),
    AutoRule(tier="medium", signals={"tools": True}),
    AutoRule(tier="medium", signals={"images": True}),
)


@dataclass(frozen=True, slots=True)
class Features:
    """What the classifier saw in a request."""

    tokens: int
    code: bool = False
    math: bool = False
    reasoning: bool = False  # deep: proofs, rigorous derivations, design trade-offs
    analysis: bool = False  # light: explain, compare, critique, longer writing
    tools: bool = False
    images: bool = False
    json: bool = False
    text: str = ""  # the scanned, lower-cased slice (for keyword rules)
    words: frozenset[str] = frozenset()  # its words (for single-word keywords)

    def signals(self) -> dict[str, bool]:
        """The boolean signals by name, as rules refer to them."""
        return {"code": self.code, "math": self.math, "reasoning": self.reasoning,
                "analysis": self.analysis, "tools": self.tools, "images": self.images,
                "json": self.json}

    def capabilities(self) -> frozenset[str]:
        """Deployment capabilities this request cannot do without."""
        needed = {"vision"} if self.images else set()
        if self.tools:
            needed.add("tools")
        if self.json:
            needed.add("json")
        return frozenset(needed)


def _text_parts(content: Any) -> tuple[list[str], bool]:
    if isinstance(content, str):
        return [content], False
    texts: list[str] = []
    image = False
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            if part.get("type") in ("image_url", "input_image", "image"):
                image = True
    return texts, image


def _scanned_text(messages: list[Any]) -> tuple[str, bool]:
    """The slice of the prompt to scan, and whether any message carries an image."""
    system = ""
    last_user = ""
    images = False
    for message in messages:
        if not isinstance(message, dict):
            continue
        texts, has_image = _text_parts(message.get("content"))
        images = images or has_image
        role = message.get("role")
        if role in ("system", "developer") and not system:
            system = " ".join(texts)[:SCAN_SYSTEM_CHARS]
        elif role == "user":
            last_user = " ".join(texts)
    if len(last_user) > SCAN_HEAD_CHARS + SCAN_TAIL_CHARS:
        last_user = last_user[:SCAN_HEAD_CHARS] + " " + last_user[-SCAN_TAIL_CHARS:]
    return f"{system}\n{last_user}".lower(), images


def classify(body: dict[str, Any], tokens: int | None = None) -> Features:
    """Extract the routing features of a chat completion body (``tokens``: the request's
    prompt estimate when the caller has it already)."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    text, images = _scanned_text(messages)
    words = frozenset(text.translate(_PUNCTUATION).split())
    fmt = body.get("response_format")
    return Features(
        tokens=estimate_message_tokens(messages) if tokens is None else tokens,
        code=_cue(words, text, _CODE_WORDS, _CODE_PHRASES),
        math=_cue(words, text, _MATH_WORDS, _MATH_PHRASES) or bool(_MATH_SYMBOLS.search(text)),
        reasoning=_cue(words, text, _REASONING_WORDS, _REASONING_PHRASES),
        analysis=_cue(words, text, _ANALYSIS_WORDS, _ANALYSIS_PHRASES),
        tools=bool(body.get("tools") or body.get("functions")),
        images=images,
        json=isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"),
        text=text,
        words=words,
    )


def rule_matches(rule: AutoRule, features: Features) -> bool:
    """Every condition the rule states holds for ``features``."""
    if rule.min_tokens is not None and features.tokens < rule.min_tokens:
        return False
    signals = features.signals()
    if any(signals.get(name, False) != wanted for name, wanted in rule.signals.items()):
        return False
    # A one-word keyword must be a whole word ("prove" must not match "improve").
    return not rule.keywords or any(k in features.words if " " not in k else k in features.text
                                    for k in rule.keywords)


def _describe(rule: AutoRule) -> str:
    parts = [name if wanted else f"not-{name}" for name, wanted in rule.signals.items()]
    if rule.min_tokens is not None:
        parts.append(f"tokens>={rule.min_tokens}")
    if rule.keywords:
        parts.append("keywords")
    return "+".join(parts) or "always"


@dataclass(frozen=True, slots=True)
class AutoDecision:
    """The auto router's choice: tier, why, and the candidates cheapest first."""

    router: str
    tier: str
    reasons: tuple[str, ...]
    features: Features
    candidates: tuple[Provider, ...]

    def header(self) -> str:
        """The ``x-neuroroute-route`` value (ASCII, no secrets)."""
        why = ",".join(self.reasons) or "default"
        return f"{self.router}; tier={self.tier}; reason={why}; tokens={self.features.tokens}"


class AutoRouter:
    """One configured router model (``auto_routers`` in the YAML file)."""

    def __init__(self, config: AutoRouterConfig) -> None:
        self.config = config
        self.rules = config.rules if config.rules is not None else self._default_rules()
        self.rank = {tier: i for i, tier in enumerate(config.tiers)}

    def _default_rules(self) -> tuple[AutoRule, ...]:
        # The built-in rules name small/medium/large; with other tier names they map onto
        # the router's own tiers by position (first, middle, last).
        tiers = self.config.tiers
        mapping = {"small": tiers[0], "medium": tiers[len(tiers) // 2], "large": tiers[-1]}
        return tuple(AutoRule(tier=mapping[r.tier], min_tokens=r.min_tokens, signals=r.signals,
                              keywords=r.keywords) for r in DEFAULT_RULES)

    def tier(self, features: Features) -> tuple[str, tuple[str, ...]]:
        """The highest tier any matching rule asks for, and the rules that asked for it."""
        best = self.config.default_tier
        reasons: list[str] = []
        for rule in self.rules:
            if not rule_matches(rule, features):
                continue
            if self.rank[rule.tier] > self.rank[best]:
                best, reasons = rule.tier, [_describe(rule)]
            elif rule.tier == best and self.rank[best] > self.rank[self.config.default_tier]:
                reasons.append(_describe(rule))
        return best, tuple(reasons)

    def decide(self, body: dict[str, Any], providers: Iterable[Provider], *,
               price: Callable[[str], Price | None],
               tokens: int | None = None) -> AutoDecision:
        """Classify ``body`` and order the eligible deployments by estimated price (``price``:
        the registry's price of each deployment; ``tokens``: the prompt estimate, if known).

        Raises InvalidRequestError (400) when no deployment has the needed capabilities.
        """
        features = classify(body, tokens)
        tier, reasons = self.tier(features)
        capable = self._capable(features, providers)
        if not capable:
            needed = ", ".join(sorted(features.capabilities())) or "a routable tier"
            raise InvalidRequestError(
                f"No deployment behind '{self.config.name}' supports this request "
                f"(needs: {needed}; about {features.tokens} input tokens).",
                param="model", code="no_capable_deployment")
        needed_rank = self.rank[tier]
        eligible = [p for p in capable if self.rank[p.deployment.tier or ""] >= needed_rank]
        if not eligible:  # nothing that able: the most able tier available is the best bet
            top = max(self.rank[p.deployment.tier or ""] for p in capable)
            eligible = [p for p in capable if self.rank[p.deployment.tier or ""] == top]
            reasons = (*reasons, f"no-{tier}-available")
        return AutoDecision(self.config.name, tier, reasons, features,
                            tuple(self.order_by_price(eligible, features.tokens, price)))

    def _capable(self, features: Features, providers: Iterable[Provider]) -> list[Provider]:
        needed = features.capabilities()
        return [p for p in providers
                if p.deployment.tier in self.rank
                and needed <= p.deployment.capabilities
                and (p.deployment.max_input_tokens is None
                     or p.deployment.max_input_tokens >= features.tokens)]

    def order_by_price(self, providers: Sequence[Provider], tokens: int,
                       price: Callable[[str], Price | None]) -> list[Provider]:
        """Cheapest first for a request of ``tokens`` input tokens (``price``: the registry's
        price of a deployment; unknown prices last); lower tier breaks ties."""
        out = self.config.expected_output_tokens
        return sorted(providers, key=lambda p: (ranking_cost(price(p.deployment.id), tokens, out),
                                                self.rank[p.deployment.tier or ""],
                                                p.deployment.id))
