"""The chat completion pipeline, top to bottom: admit -> route -> relay -> account.

1. **admit**: the key's allowlist, then one Redis round trip (when Redis is used) that
   checks and charges its RPM/TPM, reserves on its budgets, and reads the breaker state of
   the deployments the router will consider and the response-cache entry;
2. **route**: the dispatcher picks a deployment (the plan was made before admission, so its
   candidates' breakers could be read in that round trip) and retries/falls back before the
   first byte;
3. **relay**: the provider's answer, or its stream event by event (:class:`ChatEvents`);
4. **account**: when the response is closed, :class:`~app.chat.accounting.Accounting` writes
   the usage record, settles the quota (at most one more Redis command) and the metrics.

The view only parses and serializes; what it needs comes back as a :class:`ChatOutcome`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from app.admission.service import Admission, BudgetExceeded, QuotaExceeded
from app.auth.service import Principal
from app.cache import HIT, MISS, Lookup, ResponseCache, replay_as_stream
from app.chat.accounting import Accounting
from app.chat.headers import answer_headers, error_headers
from app.chat.surfaces import CHAT, Surface
from app.chat.trace import ChatTrace
from app.errors import GatewayError, ModelNotFoundError
from app.providers.base import ChatRequest, ChatResult, ChatStream
from app.routing.dispatch import Dispatcher, Outcome
from app.routing.options import route_options
from app.usage.reserve import ReservationEstimator


@dataclass(slots=True)
class ChatOutcome:
    """What the view sends: a JSON body or an event stream, with its headers."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    events: Iterator[bytes] | None = None


class ChatService:
    def __init__(self, *, dispatcher: Dispatcher, admission: Admission, cache: ResponseCache,
                 estimator: ReservationEstimator, accounting: Accounting) -> None:
        self.dispatcher = dispatcher
        self.admission = admission
        self.cache = cache
        self.estimator = estimator
        self.accounting = accounting

    def start(self, principal: Principal, *, request_id: str,
              started: float | None = None) -> ChatTrace:
        """The trace of a new request; hand it to :meth:`finish` when the response closes."""
        return ChatTrace(principal, request_id, started or time.perf_counter())

    def complete(self, trace: ChatTrace, body: dict[str, Any], *, cache_control: str = "",
                 fallbacks: str | None = None, surface: Surface = CHAT) -> ChatOutcome:
        """Serve a validated body of the ``surface``'s API (chat completions by default).

        Raises GatewayError (rendered by the HTTP layer) for a model the key may not use or
        that does not exist (404), a limit or budget (429, with the ``x-ratelimit-*``
        headers), and upstream failures before the first byte.
        """
        principal = trace.principal
        trace.api = surface.api
        model = body.get("model")
        if isinstance(model, str):
            trace.model = model  # for the access line, should the translation refuse it
        # Gateway-only options (fallbacks off...) leave the body before caching and dispatch.
        body, options = route_options(body, fallbacks)
        request = trace.request = surface.request(body, request_id=trace.request_id)
        model = trace.model = request.model
        trace.stream = request.stream
        if not principal.may_use(model):
            raise ModelNotFoundError(model)
        dispatcher = self.dispatcher
        registry = dispatcher.registry
        plan = dispatcher.plan(request)
        policy = registry.cache_policy(model)
        if request.stream and not surface.replays_streams:
            policy = None
        lookup = self.cache.plan(request.body, policy, key_id=principal.key_id,
                                 team_id=principal.team_id, cache_control=cache_control,
                                 api=surface.api)
        breaker_keys = dispatcher.breaker.prefetch_keys(plan.candidate_ids)
        try:
            admitted = trace.admitted = self.admission.admit(
                principal, tokens=request.requested_tokens,
                reserve=lambda: self.estimator.reserve(
                    request, (registry.price(i) for i in plan.candidate_ids)),
                breaker_keys=list(breaker_keys), cache_key=self.cache.redis_key(lookup))
        except (QuotaExceeded, BudgetExceeded) as err:
            err.headers.update(error_headers(err.limits))
            raise
        lookup = self.cache.resolve(lookup, raw=admitted.cache_entry,
                                    was_read=admitted.cache_read)
        trace.cache = lookup.status
        if lookup.status == HIT and lookup.result is not None:
            return self._cached(trace, request, lookup, surface)
        prefetched = None
        if admitted.breakers is not None:
            prefetched = {dep: admitted.breakers.get(key) for key, dep in breaker_keys.items()}
        dispatched = time.perf_counter()
        try:
            outcome = dispatcher.chat(request, options, plan=plan, prefetched=prefetched)
        except GatewayError as err:
            trace.upstream_seconds = time.perf_counter() - dispatched
            trace.attempts = int(err.headers.get("x-neuroroute-attempts", "0"))
            err.headers.update(error_headers(admitted.limits))
            raise
        trace.upstream_seconds = time.perf_counter() - dispatched
        self._routed(trace, outcome)
        if outcome.stream is not None:
            return ChatOutcome(200, answer_headers(trace, stream=True),
                               events=ChatEvents(trace, surface.events(request,
                                                                       outcome.stream),
                                                 marker=surface.content_marker))
        assert outcome.result is not None
        result = surface.answer(request, outcome.result)
        trace.usage = result.usage
        trace.cost, trace.price_known = self.accounting.cost(trace.deployment, result.usage)
        if lookup.status == MISS:
            trace.cache_set = self.cache.keep(lookup, result, outcome.deployment.id)
        return ChatOutcome(result.status, answer_headers(trace, stream=False), body=result.body)

    def finish(self, trace: ChatTrace, *, status: int, error_code: str | None,
               duration: float) -> dict[str, Any]:
        """Account for the request once (see Accounting.finish); the access-line fields."""
        return self.accounting.finish(trace, status=status, error_code=error_code,
                                      duration=duration)

    @staticmethod
    def _routed(trace: ChatTrace, outcome: Outcome) -> None:
        trace.deployment = outcome.deployment.id
        trace.provider = outcome.deployment.provider
        trace.attempts = outcome.attempts
        trace.route = outcome.route
        trace.auto_route = outcome.decision.header() if outcome.decision else None

    def _cached(self, trace: ChatTrace, request: ChatRequest, lookup: Lookup,
                surface: Surface) -> ChatOutcome:
        """Answer from the cache: the stored bytes, or a stream replayed from them."""
        result: ChatResult | None = lookup.result
        assert result is not None
        trace.deployment = lookup.deployment or "cache"
        trace.attempts = 0
        trace.cost, trace.price_known = 0.0, True  # no upstream spend
        if request.stream:
            stream = replay_as_stream(result, include_usage=request.include_usage)
            return ChatOutcome(200, answer_headers(trace, stream=True),
                               events=ChatEvents(trace, surface.events(request, stream),
                                                 marker=surface.content_marker))
        trace.usage = result.usage
        result = surface.replayed(request, result)
        return ChatOutcome(200, answer_headers(trace, stream=False), body=result.body)


class ChatEvents:
    """A stream's events as the client receives them, recorded on the trace: time to first
    byte, content events (a token estimate when the upstream reports none), usage, the error
    that ended it, and whether the client left early. Closing it closes the upstream, then
    runs what was registered with :meth:`after_close` (the HTTP layer hands this object to
    the WSGI server as is: each wrapping iterator would be one more frame per relayed event
    and on every idle stream's saved stack)."""

    __slots__ = ("_trace", "_stream", "_events", "_first", "_after", "_marker")

    def __init__(self, trace: ChatTrace, stream: ChatStream, *,
                 marker: bytes = b'"content":') -> None:
        self._trace = trace
        self._stream = stream
        self._marker = marker  # what marks an event with content (the surface's)
        self._events = iter(stream)
        self._first = True
        self._after: list[Callable[[], None]] = []

    def after_close(self, callback: Callable[[], None]) -> None:
        self._after.append(callback)

    def __iter__(self) -> ChatEvents:
        return self

    def __next__(self) -> bytes:
        block = next(self._events)  # StopIteration ends the stream; close() follows
        trace = self._trace
        if self._first:
            self._first = False
            trace.ttft_seconds = time.perf_counter() - trace.started
        trace.content_events += block.count(self._marker)
        return block

    def close(self) -> None:
        """The response is done or the client went away: record the end, release upstream."""
        stream, trace = self._stream, self._trace
        trace.cancelled = not stream.completed and stream.error is None
        trace.usage = stream.usage
        trace.stream_error = stream.error
        try:
            stream.close()
        finally:
            after, self._after = self._after, []
            for callback in after:
                callback()
