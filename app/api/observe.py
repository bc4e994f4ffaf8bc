"""Per-request observation in the HTTP layer: the access line and the request metrics.

A :class:`RequestLog` is started before each request and finished exactly once when the WSGI
server closes the response, which for a stream is after its last byte (or when the client
went away), so durations cover the whole stream. A chat request's own accounting (usage,
quota, chat metrics) runs at that moment too and adds its fields to the access line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.metrics import REQUEST_SECONDS, REQUESTS, Labels, Recorder

access_log = logging.getLogger("app.access")


@dataclass(slots=True)
class RequestLog:
    request_id: str
    method: str
    path: str
    route: str
    client_ip: str | None
    started: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    # Called once at the end with (status, error_code, duration); returns access-line fields.
    detail: Callable[[int, str | None, float], dict[str, Any]] | None = None
    finished: bool = False


class Observer:
    """Finishes RequestLogs: metrics (batched) and one JSON access line each."""

    def __init__(self, *, recorder: Recorder, labels: Labels, access_log_enabled: bool) -> None:
        self.recorder = recorder
        self.labels = labels
        self.access_log_enabled = access_log_enabled

    def start(self, log: RequestLog) -> RequestLog:
        self.recorder.start()  # the background flush, in the serving process only
        self.recorder.in_flight += 1
        return log

    def finish(self, log: RequestLog, status: int, error_code: str | None) -> None:
        if log.finished:
            return
        log.finished = True
        self.recorder.in_flight -= 1
        duration = time.perf_counter() - log.started
        fields: dict[str, Any] = {}
        if log.detail is not None:
            try:
                fields = log.detail(status, error_code, duration)
            except Exception:  # accounting must never lose the access line
                access_log.exception("request accounting failed")
        model = self.labels.model(fields.get("model"))
        self.recorder.inc(REQUESTS, (log.route, model,
                                     self.labels.deployment(fields.get("deployment")),
                                     str(fields.get("outcome_status", status))))
        self.recorder.observe(REQUEST_SECONDS, (log.route, model), duration)
        if self.access_log_enabled:
            line: dict[str, Any] = {
                "request_id": log.request_id, "client_ip": log.client_ip,
                "method": log.method, "path": log.path, "status": status,
                "latency_ms": round(duration * 1000, 2), "key_id": log.key_id}
            if error_code is not None:
                line["error_code"] = error_code
            line.update(fields)
            access_log.info("request", extra=line)
