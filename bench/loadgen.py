"""Streaming and open-loop load generator: raw asyncio protocols on uvloop, one process.

A hand-rolled HTTP/1.1 client (``asyncio.Protocol``) instead of aiohttp/httpx because the
generator shares a core with the mock upstream and must not be what limits a run: per chunk
it only timestamps and counts, it never builds Python objects for headers or events.

Modes (``python -m bench.loadgen '<json config>'`` prints one JSON result line):

* ``streams``: ``concurrency`` closed-loop users, each opening streams one after the other on a
  keep-alive connection until ``duration`` is over. Measures time to first event (TTFT),
  inter-chunk gaps, stalls (gap > ``stall_ms``), completion and errors.
* ``open``: open-loop requests at a fixed ``rate`` for ``duration``. Send times are scheduled
  up front and latency is measured *from the scheduled time*, so a slow server cannot slow the
  generator down and hide its own queueing (no coordinated omission).

Every run is bounded: nothing new starts after ``duration`` and anything still in flight
``grace`` seconds later is aborted and counted as an error.
"""

from __future__ import annotations

import array
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

now = time.perf_counter
_END_CHUNKED = b"\r\n0\r\n\r\n"


class Reply:
    """What one request produced (times are ``perf_counter`` seconds)."""

    __slots__ = ("status", "body", "events", "done", "error_event", "t_first", "t_end",
                 "max_gap", "stalls", "complete")

    def __init__(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.events = 0
        self.done = False
        self.error_event = False
        self.t_first = 0.0
        self.t_end = 0.0
        self.max_gap = 0.0
        self.stalls = 0
        self.complete = False


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, gaps: array.array | None = None, stall_s: float = 0.2,
                 keep_body: bool = True) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.gaps = gaps
        self.stall_s = stall_s
        self.keep_body = keep_body
        self._fut: asyncio.Future[Reply] | None = None
        self._reply = Reply()
        self._head = b""
        self._in_body = False
        self._length = -1
        self._chunked = False
        self._got = 0
        self._tail = b""
        self._last = 0.0
        self._close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._fut is not None and not self._fut.done():
            r = self._reply
            # A close-delimited body ends at EOF; anything else is a truncated response.
            r.complete = self._in_body and self._length < 0 and not self._chunked
            r.t_end = now()
            self._fut.set_result(r)

    def send(self, request: bytes) -> asyncio.Future[Reply]:
        """Write ``request``; the future resolves when the whole response has arrived."""
        self._fut = asyncio.get_running_loop().create_future()
        self._reply = Reply()
        self._head, self._in_body, self._length, self._chunked = b"", False, -1, False
        self._got, self._tail, self._last = 0, b"\r\n", 0.0
        assert self.transport is not None
        self.transport.write(request)
        return self._fut

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end].lower(), self._head[end + 4:]
            self._reply.status = int(head[9:12])
            self._in_body = True
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value:
                    self._chunked = True
                elif name == b"connection" and b"close" in value:
                    self._close_after = True
            if not data and self._length != 0:
                return
        r = self._reply
        t = now()
        if b"data:" in data:
            # One read can carry several events; gaps are measured between reads that carry
            # events, which is what a client sees as "the stream paused".
            r.events += data.count(b"data:")
            if r.t_first == 0.0:
                r.t_first = t
            else:
                gap = t - self._last
                if gap > r.max_gap:
                    r.max_gap = gap
                if gap > self.stall_s:
                    r.stalls += 1
                if self.gaps is not None:
                    self.gaps.append(gap)
            self._last = t
            if b"[DONE]" in data:
                r.done = True
            if b'"error"' in data:
                r.error_event = True
        if self.keep_body:
            r.body += data
        self._got += len(data)
        if self._length >= 0:
            finished = self._got >= self._length
        elif self._chunked:
            # The terminating chunk; SSE payloads use bare \n, so \r\n0\r\n\r\n is framing.
            finished = (self._tail + data[-7:]).endswith(_END_CHUNKED)
            self._tail = (self._tail + data)[-7:]
        else:
            finished = False
        if finished and self._fut is not None and not self._fut.done():
            r.complete = True
            r.t_end = t
            self._fut.set_result(r)
            if self._close_after and self.transport is not None:
                self.transport.close()


def build_request(host: str, port: int, path: str, key: str, body: dict[str, Any]) -> bytes:
    """A pre-encoded POST with a JSON body (sent as is for every request)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Accept: */*\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


async def _connect(host: str, port: int, **kw: Any) -> Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Conn(**kw), host, port)
    return conn


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _summary_ms(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {"p50_ms": round(_pct(ms, 50), 3), "p90_ms": round(_pct(ms, 90), 3),
            "p99_ms": round(_pct(ms, 99), 3), "max_ms": round(ms[-1], 3) if ms else float("nan")}


def _cdf(values: list[float]) -> list[tuple[float, float]]:
    ms = sorted(v * 1000 for v in values)
    points = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99)
    return [(p, round(_pct(ms, p), 3)) for p in points] if ms else []


async def _finish(tasks: Sequence[asyncio.Future[Any]], timeout: float, conns: list[Conn],
                  errors: Counter[str]) -> None:
    """Wait up to ``timeout`` for ``tasks``; cancel and count the late ones as timeouts, then
    close every connection."""
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        errors["timeout"] += len(pending)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.abort()


async def run_streams(cfg: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop streaming users; see the module docstring."""
    host, port, n = cfg["host"], cfg["port"], int(cfg["concurrency"])
    req = build_request(host, port, cfg["path"], cfg["key"], cfg["body"])
    duration, ramp, grace = float(cfg["duration"]), float(cfg.get("ramp", 1.0)), \
        float(cfg.get("grace", 10.0))
    stall_s = float(cfg.get("stall_ms", 200)) / 1000
    once = bool(cfg.get("once", False))
    gaps: array.array = array.array("d")
    ttft: list[float] = []
    total: list[float] = []
    errors: Counter[str] = Counter()
    stats = Counter[str]()
    conns: list[Conn] = []
    t0 = now()
    stop_at = t0 + ramp + duration

    async def user(i: int) -> None:
        await asyncio.sleep(ramp * i / n)
        conn: Conn | None = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await _connect(host, port, gaps=gaps, stall_s=stall_s,
                                          keep_body=False)
                    conns.append(conn)
                t_send = now()
                stats["started"] += 1
                reply = await conn.send(req)
            except OSError as exc:
                errors[f"connect:{type(exc).__name__}"] += 1
                conn = None
                await asyncio.sleep(0.05)
                if once or now() >= stop_at:
                    return
                continue
            if reply.status != 200:
                errors[f"status:{reply.status}"] += 1
            elif not reply.complete or not reply.done:
                errors["truncated"] += 1
            elif reply.error_event:
                errors["error_event"] += 1
            else:
                stats["completed"] += 1
                ttft.append(reply.t_first - t_send)
                total.append(reply.t_end - t_send)
            stats["stalls"] += reply.stalls
            if once or now() >= stop_at:
                return

    tasks = [asyncio.ensure_future(user(i)) for i in range(n)]
    await _finish(tasks, ramp + duration + grace, conns, errors)
    elapsed = now() - t0
    gap_list = list(gaps)
    return {
        "mode": "streams", "concurrency": n, "elapsed_s": round(elapsed, 2),
        "streams_started": stats["started"], "streams_completed": stats["completed"],
        "errors": sum(errors.values()), "error_detail": dict(errors),
        "stalls": stats["stalls"], "stall_ms": stall_s * 1000,
        "ttft": _summary_ms(ttft), "ttft_cdf_ms": _cdf(ttft), "duration": _summary_ms(total),
        "gap": _summary_ms(gap_list) if gap_list else {},
    }


async def run_open(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fixed-rate arrivals, latency from each request's scheduled send time."""
    host, port = cfg["host"], cfg["port"]
    req = build_request(host, port, cfg["path"], cfg["key"], cfg["body"])
    rate, duration = float(cfg["rate"]), float(cfg["duration"])
    grace, max_conns = float(cfg.get("grace", 5.0)), int(cfg.get("max_conns", 512))
    count = max(1, int(rate * duration))
    idle: list[Conn] = []
    all_conns: list[Conn] = []
    sem = asyncio.Semaphore(max_conns)
    lat: list[float] = []
    lag: list[float] = []
    errors: Counter[str] = Counter()

    async def one(scheduled: float) -> None:
        async with sem:
            lag.append(now() - scheduled)
            conn = None
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    break
                conn = None
            try:
                if conn is None:
                    conn = await _connect(host, port)
                    all_conns.append(conn)
                reply = await conn.send(req)
            except OSError as exc:
                errors[f"connect:{type(exc).__name__}"] += 1
                return
            if reply.status != 200:
                errors[f"status:{reply.status}"] += 1
            elif not reply.complete:
                errors["truncated"] += 1
            else:
                lat.append(reply.t_end - scheduled)
            if not conn.closed:
                idle.append(conn)

    tasks: list[asyncio.Task[None]] = []
    t0 = now() + 0.05
    for i in range(count):
        scheduled = t0 + i / rate
        delay = scheduled - now()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await _finish(tasks, grace, all_conns, errors)
    elapsed = now() - t0
    return {
        "mode": "open", "rate": rate, "duration_s": duration, "sent": count,
        "completed": len(lat), "achieved_rps": round(len(lat) / max(elapsed, 1e-9), 1),
        "errors": sum(errors.values()), "error_detail": dict(errors),
        "latency": _summary_ms(lat), "send_lag": _summary_ms(lag), "connections":
        len(all_conns),
    }


async def run_once(cfg: dict[str, Any]) -> dict[str, Any]:
    """One request; returns status, body (decoded) and event counts (used by the smoke test)."""
    conn = await _connect(cfg["host"], cfg["port"])
    try:
        t = now()
        req = build_request(cfg["host"], cfg["port"], cfg["path"], cfg["key"], cfg["body"])
        reply = await asyncio.wait_for(conn.send(req), cfg.get("timeout", 10))
        return {"status": reply.status, "body": bytes(reply.body).decode(errors="replace"),
                "events": reply.events, "done": reply.done, "complete": reply.complete,
                "error_event": reply.error_event, "ms": (reply.t_end - t) * 1000}
    finally:
        if conn.transport is not None:
            conn.transport.close()


MODES = {"streams": run_streams, "open": run_open, "once": run_once}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one mode to completion on uvloop (asyncio's default loop if uvloop is missing)."""
    coro = MODES[cfg["mode"]](cfg)
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
