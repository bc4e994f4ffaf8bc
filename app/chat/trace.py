"""What one chat request did, filled in stage by stage and accounted once when it ends."""

from __future__ import annotations

import time

from app.admission.service import Admitted
from app.auth.service import Principal
from app.errors import GatewayError
from app.providers.base import CHAT_COMPLETIONS, ChatRequest, Usage


class ChatTrace:
    """The typed record of one request through the pipeline (never a metrics object).

    The chat service fills it in; :class:`~app.chat.accounting.Accounting` turns it, once, into
    the usage record, the quota settlement and the metrics when the response is closed (for a
    stream: after its last byte, or when the client went away). A plain class whose fields
    default at class level: a dataclass ``__init__`` assigning all 28 of them was 4% of a
    stream's CPU (S4 profile); most stay at their default.
    """

    api: str = CHAT_COMPLETIONS  # which API surface the client used
    model: str | None = None
    stream: bool = False
    request: ChatRequest | None = None
    admitted: Admitted | None = None
    cache: str | None = None  # hit | miss | skip
    cache_set: tuple[str, bytes, int] | None = None  # entry for the settlement to store
    deployment: str | None = None
    provider: str | None = None
    attempts: int | None = None
    route: str | None = None  # x-neuroroute-route
    auto_route: str | None = None  # the auto router's decision, for the usage record
    upstream_seconds: float | None = None
    ttft_seconds: float | None = None
    usage: Usage | None = None
    cost: float | None = None  # USD of ``usage``, once computed
    price_known: bool = True
    content_events: int = 0  # streamed events with content (a token estimate when needed)
    cancelled: bool = False  # the client went away before the stream was complete
    stream_error: GatewayError | None = None  # the stream failed after it began
    finished: bool = False

    def __init__(self, principal: Principal, request_id: str,
                 started: float | None = None) -> None:
        self.principal = principal
        self.request_id = request_id
        self.started = time.perf_counter() if started is None else started
