"""Send a chat request to the best deployment, retrying and falling back before the first byte.

A request walks *stages*: its model group (or the auto router's candidates), then, on
failure, the group's ``fallbacks`` (or, when the prompt is too long, its
``context_window_fallbacks``). Within a stage, up to ``retries`` more attempts follow a
transient failure, preferring deployments that have not failed yet; a deployment is retried
only after an exponential, jittered backoff (at least its ``Retry-After``). Everything
happens before a byte reaches the client: a stream counts as started only once its first
event has arrived, so an upstream that fails earlier is retried transparently.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from app.errors import GatewayError, InvalidRequestError, ModelNotFoundError, RateLimitError
from app.providers.base import FAMILY, ChatRequest, ChatResult, ChatStream, Provider
from app.routing.auto import AutoDecision, AutoRouter
from app.routing.cooldown import Admission, CircuitBreaker
from app.routing.options import RouteOptions
from app.routing.registry import ModelRegistry
from app.routing.retry import Failure, classify, retry_after_s, retry_delay_s
from app.routing.state import RoutingState
from app.routing.strategies import PickContext, build_strategies
from app.settings import Deployment, GroupPolicy, RoutingConfig


@dataclass(slots=True)
class Outcome:
    """What the dispatcher produced and which deployment produced it."""

    deployment: Deployment
    result: ChatResult | None = None
    stream: ChatStream | None = None
    attempts: int = 1
    route: str = ""  # x-neuroroute-route: how the deployment was chosen
    decision: AutoDecision | None = None  # the auto router's decision, for usage records


class StageEnd(Enum):
    """Why a stage produced no answer."""

    FAILED = "failed"  # attempts made, all failed
    CONTEXT = "context"  # the prompt is too long for this stage
    CAPACITY = "capacity"  # every deployment is at its rpm/tpm limit
    COOLDOWN = "cooldown"  # every deployment is cooling down
    DEADLINE = "deadline"  # the request's routing deadline passed


@dataclass(slots=True)
class Stage:
    """A set of interchangeable deployments and how to choose among them."""

    label: str  # the group name, or the auto router's name
    providers: Sequence[Provider]
    strategy: str
    retries: int
    expected_output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """How a request will be routed, decided before it is admitted (no I/O): the first stage
    (the model's group, or the auto router's candidates) and what the route header says."""

    first: Stage
    route: str
    policy: GroupPolicy
    decision: AutoDecision | None = None

    @property
    def candidate_ids(self) -> list[str]:
        """The deployments the first attempt may go to (their breakers are read early)."""
        return [p.deployment.id for p in self.first.providers]


@dataclass(slots=True)
class _Run:
    """Bookkeeping of one request's way through the stages."""

    request: ChatRequest
    options: RouteOptions
    tokens: int
    deadline: float
    # Breaker state read in the admission round trip (deployment id -> open until, None:
    # closed); only the first selection uses it, later ones read the store again.
    prefetched: Mapping[str, float | None] | None = None
    attempts: int = 0
    failed: dict[str, GatewayError] = field(default_factory=dict)  # by deployment id
    excluded: set[str] = field(default_factory=set)  # deployments that cannot serve at all
    last_error: GatewayError | None = None


@dataclass(slots=True)
class _Pick:
    provider: Provider
    admission: Admission


class Dispatcher:
    """Chooses deployments, calls them, and records what happened in the routing state.

    ``registry`` is read on every request, so assigning a rebuilt registry to it takes effect
    at once; runtime state is keyed by deployment id and survives the swap.
    """

    def __init__(self, *, registry: ModelRegistry, routing: RoutingConfig | None = None,
                 state: RoutingState | None = None, breaker: CircuitBreaker | None = None,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.routing = routing or RoutingConfig()
        self.state = state or RoutingState(alpha=self.routing.latency_ewma_alpha)
        self.breaker = breaker or CircuitBreaker(self.routing.cooldown)
        self.rng = rng or random.Random()
        self.strategies = build_strategies(self.state, self.rng)
        self.auto = {r.name: AutoRouter(r) for r in self.routing.auto_routers}
        self.sleep = sleep  # time.sleep is cooperative in gevent workers
        self.clock = clock

    def plan(self, request: ChatRequest) -> Plan:
        """Where the request will go first. Raises ModelNotFoundError (404) for an unknown
        model and InvalidRequestError (400) when no auto-routed deployment can serve it."""
        router = self.auto.get(request.model)
        if router is not None and FAMILY[request.api] != "chat":
            raise InvalidRequestError(f"The auto router '{request.model}' serves chat only.",
                                      param="model", code="model_not_supported")
        if router is not None:
            decision = router.decide(request.body, self.registry.providers(),
                                     price=self.registry.price, tokens=request.prompt_tokens)
            first = Stage(router.config.name, decision.candidates, "cheapest",
                          self.routing.retry.retries, router.config.expected_output_tokens)
            policy = self.routing.group(decision.candidates[0].deployment.name)
            return Plan(first, decision.header(), policy, decision)
        if self.registry.get(request.model) is None:
            raise ModelNotFoundError(request.model)
        stage = self._group_stage(request.model, request.api)
        if not stage.providers:
            raise InvalidRequestError(f"The model '{request.model}' does not serve "
                                      f"{FAMILY[request.api]} requests.",
                                      param="model", code="model_not_supported")
        return Plan(stage, f"model={request.model}", self.routing.group(request.model))

    def chat(self, request: ChatRequest, options: RouteOptions | None = None, *,
             plan: Plan | None = None,
             prefetched: Mapping[str, float | None] | None = None) -> Outcome:
        """Pick deployments and call them until one answers.

        ``plan`` is :meth:`plan`'s answer when the caller has it already; ``prefetched`` the
        breaker state of its candidates read in the admission round trip.
        Raises GatewayError before any byte is sent: the last upstream error, RateLimitError
        (429) when every deployment is at capacity, ModelNotFoundError for an unknown model.
        The error carries ``x-neuroroute-attempts``.
        """
        plan = plan or self.plan(request)
        run = _Run(request, options or RouteOptions(), request.prompt_tokens,
                   self.clock() + self.routing.retry.deadline_s, prefetched)
        try:
            outcome = self._walk(run, plan.first, list(plan.policy.fallbacks),
                                 list(plan.policy.context_window_fallbacks))
        except GatewayError as err:
            err.headers = {**err.headers, "x-neuroroute-attempts": str(run.attempts)}
            raise
        route = plan.route
        if plan.decision is None and outcome.deployment.name != plan.first.label:
            route += f"; fallback={outcome.deployment.name}"
        outcome.route, outcome.decision = route, plan.decision
        return outcome

    def report(self) -> dict[str, Any]:
        """Routing view for /admin/routing: groups, policies, breaker state, this process's
        counters. Reads the breaker store (Redis when configured), never an upstream."""
        registry = self.registry
        ids = [p.deployment.id for p in registry.providers()]
        breakers = self.breaker.view(ids)
        groups = []
        for group in registry.groups():
            stage = self._group_stage(group.name)
            policy = self.routing.group(group.name)
            groups.append({
                "name": group.name, "strategy": stage.strategy, "retries": stage.retries,
                "fallbacks": list(policy.fallbacks),
                "context_window_fallbacks": list(policy.context_window_fallbacks),
                "deployments": [{
                    "id": p.deployment.id, "state": breakers[p.deployment.id].state,
                    "open_for_s": breakers[p.deployment.id].open_for_s,
                    "recent_failures": breakers[p.deployment.id].recent_failures,
                    **self.state.snapshot(p.deployment)} for p in group.providers],
            })
        return {
            "pid": os.getpid(),  # counters are per worker process; breakers may be shared
            "breaker_backend": self.breaker.backend,
            "cooldown": {"failures": self.routing.cooldown.failures,
                         "window_s": self.routing.cooldown.window_s,
                         "cooldown_s": self.routing.cooldown.cooldown_s},
            "groups": groups,
            "auto_routers": [{"name": r.name, "tiers": list(r.tiers),
                              "default_tier": r.default_tier} for r in self.routing.auto_routers],
        }

    def health(self) -> dict[str, Any]:
        """Readiness detail. Upstreams cooling down are listed but do not degrade readiness:
        it says whether this instance can serve, and an upstream that is down is down for
        every instance (a load balancer draining them all would not bring it back). Only the
        breaker store falling back in-process (Redis down) is a degradation of this instance.
        """
        ids = [p.deployment.id for p in self.registry.providers()]
        views = self.breaker.view(ids)
        unavailable = [g.name for g in self.registry.groups()
                       if all(views[p.deployment.id].state != "closed" for p in g.providers)]
        backend = self.breaker.backend
        return {"status": "degraded" if backend == "redis-unavailable" else "ok",
                "detail": {"breaker_backend": backend,
                           "cooling_down": sorted(i for i, v in views.items()
                                                  if v.state != "closed"),
                           "groups_without_healthy_deployment": unavailable}}

    def _group_stage(self, name: str, api: str | None = None) -> Stage:
        """The group's stage; with ``api``, only its deployments that serve that API."""
        group = self.registry.get(name)
        policy = self.routing.group(name)
        retries = policy.retries if policy.retries is not None else self.routing.retry.retries
        providers: Sequence[Provider] = ()
        if group is not None:
            providers = group.providers if api is None else group.serving.get(FAMILY[api], ())
        return Stage(name, providers, policy.strategy or self.routing.strategy, retries)

    def _walk(self, run: _Run, stage: Stage, fallbacks: list[str],
              context_fallbacks: list[str]) -> Outcome:
        """Run the first stage, then fallback stages while the options allow them."""
        first_end: StageEnd | None = None
        while True:
            # An oversized prompt is only diverted while a larger-context group is left;
            # otherwise it goes out as is and the upstream decides (estimates are rough).
            enforce_context = run.options.fallbacks and bool(context_fallbacks)
            last = not run.options.fallbacks or not any(
                self.registry.get(n) is not None for n in fallbacks)
            result = self._run_stage(run, stage, enforce_context=enforce_context, last=last)
            if isinstance(result, Outcome):
                return result
            first_end = first_end or result
            if not run.options.fallbacks or result is StageEnd.DEADLINE:
                break
            queue = context_fallbacks if result is StageEnd.CONTEXT else fallbacks
            next_name = next((n for n in queue if self.registry.get(n) is not None), None)
            if next_name is None:
                break
            queue.remove(next_name)
            stage = self._group_stage(next_name, run.request.api)
        return self._last_resort(run, first_end)

    def _last_resort(self, run: _Run, end: StageEnd) -> Outcome:
        """Nothing answered: raise the last error, or explain why nothing was tried."""
        if run.last_error is not None:
            raise run.last_error
        if end is StageEnd.CAPACITY:
            raise RateLimitError(f"Every deployment of '{run.request.model}' is at its "
                                 f"configured rate limit; retry shortly.",
                                 headers={"Retry-After": "1"})
        raise GatewayError(f"No deployment of '{run.request.model}' is available right now.",
                           status=503, code="no_deployment_available",
                           headers={"Retry-After": "1"})

    def _run_stage(self, run: _Run, stage: Stage, *, enforce_context: bool,
                   last: bool) -> Outcome | StageEnd:
        """Up to ``1 + retries`` attempts; ``last``: no fallback stage would follow."""
        for retry_number in range(stage.retries + 1):
            pick = self._select(run, stage, enforce_context=enforce_context, last=last)
            if isinstance(pick, StageEnd):
                return pick
            dep_id = pick.provider.deployment.id
            previous = run.failed.get(dep_id)
            if previous is not None:
                hint = retry_after_s(previous)
                if hint is not None and hint > self.routing.retry.retry_after_max_s:
                    # A longer wait is the client's to make: it gets the 429/503 and its
                    # Retry-After rather than a request held open that long.
                    return StageEnd.FAILED
                delay = retry_delay_s(self.routing.retry, previous, retry_number, self.rng)
                if self.clock() + delay > run.deadline:
                    return StageEnd.DEADLINE
                self.sleep(delay)
            elif self.clock() > run.deadline:
                return StageEnd.DEADLINE
            try:
                return self._attempt(run, pick)
            except GatewayError as err:
                run.last_error = run.failed[dep_id] = err
                kind = classify(err)
                if kind is Failure.FATAL:
                    raise
                if kind is Failure.CONTEXT:
                    return StageEnd.CONTEXT
                if kind is Failure.DEPLOYMENT:
                    run.excluded.add(dep_id)
        return StageEnd.FAILED

    def _select(self, run: _Run, stage: Stage, *, enforce_context: bool,
                last: bool) -> _Pick | StageEnd:
        """Filter by context size, capacity and cooldown, then let the strategy choose."""
        candidates = [p for p in stage.providers if p.deployment.id not in run.excluded]
        if not candidates:
            return StageEnd.FAILED
        if enforce_context:
            candidates = [p for p in candidates if _fits(p.deployment, run.tokens)]
            if not candidates:
                return StageEnd.CONTEXT
        free = [p for p in candidates if not self.state.at_capacity(p.deployment, run.tokens)]
        if not free:
            # Only a pending 429 (not rpm/tpm) holds them back: wait out its Retry-After.
            free = [p for p in candidates
                    if not self.state.over_limits(p.deployment, run.tokens)]
            if not free:
                return StageEnd.CAPACITY
        opened = self.breaker.open_until([p.deployment.id for p in free], run.prefetched)
        run.prefetched = None  # a retry reads the breakers again (a failure may open one)
        ctx = PickContext(group=stage.label, stream=run.request.stream,
                          input_tokens=run.tokens, output_tokens=stage.expected_output_tokens,
                          price=self.registry.price)
        strategy = self.strategies[stage.strategy]
        # Deployments that already failed this request go last; each pool is tried in turn.
        fresh = [p for p in free if p.deployment.id not in run.failed]
        for pool in (fresh, [p for p in free if p.deployment.id in run.failed]):
            while pool:
                provider = strategy.pick(pool, ctx)
                dep_id = provider.deployment.id
                admission = self.breaker.admit(dep_id, opened.get(dep_id))
                if admission is not Admission.OPEN:
                    return _Pick(provider, admission)
                pool.remove(provider)
        if last:
            # The breaker moves traffic elsewhere; it never fails a request by itself when
            # there is nowhere else to go. This attempt acts as the half-open probe.
            return _Pick(strategy.pick(free, ctx), Admission.FORCED)
        return StageEnd.COOLDOWN

    def _attempt(self, run: _Run, pick: _Pick) -> Outcome:
        """One upstream call; records timing, capacity and breaker state."""
        provider, dep = pick.provider, pick.provider.deployment
        run.attempts += 1
        self.state.begin(dep.id, run.tokens)
        started = self.clock()
        try:
            if run.request.stream:
                stream = provider.stream(run.request)
            else:
                result = provider.complete(run.request)
        except GatewayError as err:
            self.state.end(dep.id, ok=False)
            self._record_failure(dep, err, pick.admission)
            raise
        except BaseException:
            self.state.end(dep.id, ok=False)
            raise
        elapsed = self.clock() - started
        self.breaker.success(dep.id, pick.admission)
        if run.request.stream:
            self.state.record_timing(dep.id, ttft=elapsed)
            return Outcome(dep, stream=self._tracked(stream, dep), attempts=run.attempts)
        self.state.end(dep.id, ok=True, latency=elapsed)
        if result.usage is not None:
            self.state.add_tokens(dep.id, result.usage.completion_tokens)
        return Outcome(dep, result=result, attempts=run.attempts)

    def _record_failure(self, dep: Deployment, err: GatewayError,
                        admission: Admission) -> None:
        kind = classify(err)
        if kind in (Failure.RETRY, Failure.DEPLOYMENT):
            self.breaker.failure(dep.id)
            hint = retry_after_s(err) if err.status == 429 else None
            if hint:
                self.state.rate_limited(dep.id, min(hint, self.routing.retry.retry_after_max_s))
        else:
            # The upstream answered (a 4xx about the request): it is alive.
            self.breaker.success(dep.id, admission)

    def _tracked(self, stream: ChatStream, dep: Deployment) -> ChatStream:
        """Have the stream's end update in-flight counts, tokens and the breaker."""

        def on_end(upstream_failed: bool) -> None:
            if upstream_failed:  # it broke after the first byte: no retry, but it counts
                self.breaker.failure(dep.id)
            self.state.end(dep.id, ok=not upstream_failed)
            if stream.usage is not None:
                self.state.add_tokens(dep.id, stream.usage.completion_tokens)

        stream.on_end(on_end)
        return stream


def _fits(dep: Deployment, tokens: int) -> bool:
    return dep.max_input_tokens is None or tokens <= dep.max_input_tokens
