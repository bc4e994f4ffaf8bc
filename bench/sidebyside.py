"""The issue-10 targets, measured side by side: every variant up at once, taking turns.

The bare Flask relay, NeuroRoute minimal and NeuroRoute full (and, with ``--baseline DIR``,
the same two served by another checkout) run for the whole measurement, each one gevent
worker pinned to core 0; the mock upstream and the load generators share core 1. They take
turns in short runs, the order rotating every round, so the machine's drift (this machine's
absolute numbers move 2x between runs) hits all of them alike; each figure is the median over
rounds of the per-round ratio to the bare relay.

- S1: CPU per request at 64 connections, 0 ms upstream (wrk);
- S2: added p50 at 1 connection: the variant's p50 minus the mock's own, in the same round;
- S4: CPU per completed stream at ``s4_levels[0]`` concurrent streams (64 events 20 ms apart);
- idle: RSS per idle open stream (``s4_idle_streams``), measured first, on a fresh heap;
- round trips (full mode): Redis commands per chat request from the private Redis server's
  ``INFO commandstats``, and which of them come before the upstream call (``MONITOR`` around
  one request against the mock's arrival time); SQL statements per request from
  ``neuroroute_db_statements_total``.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from bench.procs import RSSSampler
from bench.scenarios import MB, PATH, Profile, _stream_cfg, body, loadgen, warmup
from bench.servers import LOADGEN_CORE, Server, start_mock, start_variant
from bench.wrk import run_wrk

REFERENCE = "flask_relay"
FLUSH_WAIT = 1.5  # the gateway's metrics and usage are written within a second


def _rotations(names: list[str], rounds: int) -> list[list[str]]:
    out = []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        out.append(order[::-1] if r % 2 else order)
    return out


def _median_ratio(runs: list[dict[str, Any]], name: str, key: str) -> float | None:
    ratios = []
    for r in {run["round"] for run in runs}:
        mine = next((x for x in runs if x["round"] == r and x["variant"] == name), None)
        ref = next((x for x in runs if x["round"] == r and x["variant"] == REFERENCE), None)
        if mine and ref and ref.get(key) and mine.get(key) is not None:
            ratios.append(mine[key] / ref[key])
    return round(statistics.median(ratios), 3) if ratios else None


def _s1(servers: dict[str, Server], p: Profile, rounds: int) -> list[dict[str, Any]]:
    runs = []
    for r, order in enumerate(_rotations(list(servers), rounds)):
        for name in order:
            srv = servers[name]
            cpu0 = srv.proc.cpu_seconds()
            res = run_wrk(srv.url + PATH, body(), connections=p.s1_conns, duration=2,
                          key=srv.api_key, core=LOADGEN_CORE)
            requests = max(1, res["requests"])
            runs.append({"round": r, "variant": name, "rps": res["rps"],
                         "errors": res["errors"],
                         "cpu_us_per_req": (srv.proc.cpu_seconds() - cpu0) / requests * 1e6})
    return runs


def _s2(servers: dict[str, Server], mock: Server, rounds: int) -> list[dict[str, Any]]:
    runs = []
    for r, order in enumerate(_rotations(list(servers), rounds)):
        direct = run_wrk(mock.url + PATH, body(), connections=1, duration=2, key="x",
                         core=LOADGEN_CORE)["p50_ms"]
        for name in order:
            srv = servers[name]
            res = run_wrk(srv.url + PATH, body(), connections=1, duration=2, key=srv.api_key,
                          core=LOADGEN_CORE)
            runs.append({"round": r, "variant": name, "p50_ms": res["p50_ms"],
                         "p99_ms": res["p99_ms"], "direct_p50_ms": direct,
                         "added_p50_ms": max(0.001, res["p50_ms"] - direct)})
    return runs


def _s4(servers: dict[str, Server], p: Profile, streams: int, rounds: int,
        seconds: float) -> list[dict[str, Any]]:
    stream_body = body(True, tokens=p.s4_tokens, interval_ms=p.s4_interval_ms)
    runs = []
    for r, order in enumerate(_rotations(list(servers), rounds)):
        for name in order:
            srv = servers[name]
            cpu0 = srv.proc.cpu_seconds()
            with RSSSampler(srv.proc) as rss:
                res = loadgen(_stream_cfg(srv, p, streams, seconds, stream_body),
                              p.s4_ramp_s + seconds + 60)
            done = max(1, res["streams_completed"])
            runs.append({"round": r, "variant": name, "streams": streams,
                         "completed": res["streams_completed"], "errors": res["errors"],
                         "cpu_us_per_stream": (srv.proc.cpu_seconds() - cpu0) / done * 1e6,
                         "peak_rss_mb": round(rss.peak / MB, 1)})
            time.sleep(0.5)
    return runs


def _idle(srv: Server, p: Profile, streams: int) -> dict[str, Any]:
    """RSS growth per idle open stream: headers and first event through, then silence."""
    base = srv.proc.rss_bytes()
    idle = body(True, tokens=1, ttft_ms=p.s4_idle_hold_ms)
    with RSSSampler(srv.proc, interval=0.05) as rss:
        res = loadgen(_stream_cfg(srv, p, streams, 0, idle, once=True),
                      p.s4_ramp_s + p.s4_idle_hold_ms / 1000 + 60)
    return {"streams": streams, "errors": res["errors"], "base_rss_mb": round(base / MB, 1),
            "peak_rss_mb": round(rss.peak / MB, 1),
            "rss_per_stream_kb": round((rss.peak - base) / max(streams, 1) / 1024, 1)}


def _metric(srv: Server, name: str) -> float:
    """The sum of a counter's samples on ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(srv.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


class _Monitor:
    """Client-issued Redis commands (MONITOR, without the calls scripts make) while open."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.5)
        self.seen: list[tuple[float, str]] = []

    def __enter__(self) -> _Monitor:
        self.monitor = self.client.monitor().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: object) -> None:
        while True:  # Redis kept the monitor's lines for us: read until they run out
            try:
                cmd = self.monitor.next_command()
            except (redis.TimeoutError, TimeoutError):
                break
            if cmd["client_type"] != "lua":
                self.seen.append((float(cmd["time"]), str(cmd["command"]).split(" ")[0].upper()))
        self.monitor.__exit__(None, None, None)
        self.client.close()


def _round_trips(srv: Server, mock: Server) -> dict[str, Any]:
    """Redis commands and SQL statements per chat request of a full-mode server."""
    url = srv.extra.get("NEUROROUTE_REDIS_URL")
    out: dict[str, Any] = {}
    statements_before = _metric(srv, "neuroroute_db_statements_total")
    if url:
        with _Monitor(url) as watch:
            res = run_wrk(srv.url + PATH, body(), connections=4, duration=1, key=srv.api_key,
                          core=LOADGEN_CORE)
            time.sleep(0.3)  # settlements run when the responses are closed
        served = max(1, res["requests"])
        counts: dict[str, int] = {}
        for _, name in watch.seen:
            counts[name] = counts.get(name, 0) + 1
        out["redis_per_request"] = round(len(watch.seen) / served, 3)
        out["redis_commands"] = {k: round(v / served, 3) for k, v in sorted(counts.items())}
        out["one_request"] = _monitor_one(url, srv, mock)
    else:
        res = run_wrk(srv.url + PATH, body(), connections=4, duration=1, key=srv.api_key,
                      core=LOADGEN_CORE)
        served = max(1, res["requests"])
    time.sleep(FLUSH_WAIT)  # usage written, metrics flushed
    out["requests"] = served
    out["sql_per_request"] = round(
        (_metric(srv, "neuroroute_db_statements_total") - statements_before) / served, 4)
    return out


def _monitor_one(url: str, srv: Server, mock: Server) -> dict[str, Any]:
    """The Redis commands of one chat request, split at the moment the upstream got it."""
    with _Monitor(url) as watch:
        req = urllib.request.Request(
            srv.url + PATH, method="POST", data=json.dumps(body()).encode(),
            headers={"Authorization": f"Bearer {srv.api_key}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        time.sleep(0.3)  # the settlement runs when the response is closed
    with urllib.request.urlopen(mock.url + "/_stats", timeout=5) as resp:
        arrived = json.loads(resp.read())["last_request_at"]
    return {"before_upstream": [c for t, c in watch.seen if t < arrived],
            "after_upstream": [c for t, c in watch.seen if t >= arrived]}


def run(p: Profile, logdir: Path, env: dict[str, str], names: list[str],
        rounds: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start ``names`` at once, measure each target side by side, stop them all."""
    mock = start_mock(logdir)
    servers: dict[str, Server] = {}
    try:
        for name in names:
            servers[name] = start_variant(name, mock.url + "/v1", logdir, env)
        out: dict[str, Any] = {"variants": {n: s.name for n, s in servers.items()},
                               "rounds": rounds}
        log("  side by side: idle streams")
        out["idle"] = {n: _idle(s, p, p.s4_idle_streams) for n, s in servers.items()}
        for srv in servers.values():
            warmup(srv, p)
        log("  side by side: round trips")
        out["round_trips"] = {n: _round_trips(s, mock) for n, s in servers.items()
                              if n.startswith("neuroroute_full")}
        log("  side by side: S1")
        s1 = _s1(servers, p, rounds)
        log("  side by side: S2")
        s2 = _s2(servers, mock, rounds)
        log("  side by side: S4")
        s4 = _s4(servers, p, p.s4_levels[0], max(1, rounds // 3), p.s4_s)
        big = max(p.s4_levels)
        s4_big = []
        if big != p.s4_levels[0]:
            log(f"  side by side: S4 {big} streams")
            s4_big = _s4(servers, replace(p, s4_ramp_s=p.s4_ramp_s * 2), big, 1, p.s4_s)
        out.update(s1=s1, s2=s2, s4=s4, s4_big=s4_big)
        out["ratios"] = {name: {
            "s1_cpu": _median_ratio(s1, name, "cpu_us_per_req"),
            "s2_added_p50": _median_ratio(s2, name, "added_p50_ms"),
            "s4_cpu_per_stream": _median_ratio(s4, name, "cpu_us_per_stream"),
        } for name in servers}
        out["medians"] = {name: {
            "s1_cpu_us": _median(s1, name, "cpu_us_per_req"),
            "s1_rps": _median(s1, name, "rps"),
            "s2_added_p50_ms": _median(s2, name, "added_p50_ms"),
            "s4_cpu_us_per_stream": _median(s4, name, "cpu_us_per_stream"),
            "s4_errors": sum(r["errors"] for r in s4 if r["variant"] == name),
            "s4_big_errors": sum(r["errors"] for r in s4_big if r["variant"] == name)
            if s4_big else None,
        } for name in servers}
        return out
    finally:
        for srv in servers.values():
            srv.proc.stop()
        mock.proc.stop()


def _median(runs: list[dict[str, Any]], name: str, key: str) -> float | None:
    values = [r[key] for r in runs if r["variant"] == name and r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def targets(x: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue-10 targets checked against this run's side-by-side figures."""
    r, m, trips = x["ratios"], x["medians"], x.get("round_trips", {}).get("neuroroute_full", {})
    one = trips.get("one_request") or {}

    def row(name: str, value: Any, goal: str, ok: bool | None) -> dict[str, Any]:
        return {"target": name, "value": value, "goal": goal,
                "met": None if value is None else ok}

    def at_most(name: str, value: float | None, bound: float) -> dict[str, Any]:
        return row(name, value, f"<= {bound:g}", value is not None and value <= bound)

    idle = x["idle"].get("neuroroute_full", {})
    before = len(one["before_upstream"]) if "before_upstream" in one else None
    big = m.get("neuroroute_full", {}).get("s4_big_errors")
    return [
        at_most("full S1 CPU/request vs bare relay", r.get("neuroroute_full", {}).get("s1_cpu"),
                1.0),
        at_most("minimal S1 CPU/request vs bare relay", r.get("neuroroute", {}).get("s1_cpu"),
                0.8),
        at_most("full: Redis commands per chat request", trips.get("redis_per_request"), 2),
        at_most("full: Redis commands before the upstream call", before, 1),
        at_most("full S2 added p50 vs bare relay",
                r.get("neuroroute_full", {}).get("s2_added_p50"), 1.2),
        at_most("full S4 CPU per completed stream vs bare relay",
                r.get("neuroroute_full", {}).get("s4_cpu_per_stream"), 1.1),
        row("full S4 2,000 streams: errors", big, "0", big == 0),
        at_most("full: RSS per idle open stream (KB)", idle.get("rss_per_stream_kb"), 20),
    ]


def markdown(x: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The side-by-side section of the report."""
    lines = ["## Side by side (issue 10 targets)", "",
             f"All variants up at once, one gevent worker each on core 0, taking turns in "
             f"2 s runs for {x['rounds']} rounds (S4: {max(1, x['rounds'] // 3)}), the order "
             "rotating; ratios are medians of the per-round ratio to the bare Flask relay.", "",
             "| variant | S1 CPU us/req | S1 vs bare | S1 req/s | S2 added p50 ms | S2 vs bare | "
             "S4 CPU us/stream | S4 vs bare | S4 errors | S4 big: errors | idle stream KB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in x["medians"]:
        m, r, idle = x["medians"][name], x["ratios"][name], x["idle"].get(name, {})
        lines.append(
            f"| {labels.get(name, name)} | {_fmt(m['s1_cpu_us'], 0)} | {_fmt(r['s1_cpu'], 2)} | "
            f"{_fmt(m['s1_rps'], 0)} | {_fmt(m['s2_added_p50_ms'], 3)} | "
            f"{_fmt(r['s2_added_p50'], 2)} | {_fmt(m['s4_cpu_us_per_stream'], 0)} | "
            f"{_fmt(r['s4_cpu_per_stream'], 2)} | {_fmt(m['s4_errors'], 0)} | "
            f"{_fmt(m['s4_big_errors'], 0)} | {_fmt(idle.get('rss_per_stream_kb'), 1)} |")
    lines += ["", "Round trips per chat request (full mode; Redis: the private server's "
              "`INFO commandstats`; SQL: `neuroroute_db_statements_total`):", "",
              "| variant | Redis commands | by command | before the upstream (one request) | "
              "after it | SQL statements |", "|---|---|---|---|---|---|"]
    for name, t in x.get("round_trips", {}).items():
        one = t.get("one_request", {})
        lines.append(
            f"| {labels.get(name, name)} | {_fmt(t.get('redis_per_request'), 2)} | "
            f"{', '.join(f'{k} {v:g}' for k, v in t.get('redis_commands', {}).items())} | "
            f"{' '.join(one.get('before_upstream', [])) or '-'} | "
            f"{' '.join(one.get('after_upstream', [])) or '-'} | "
            f"{_fmt(t.get('sql_per_request'), 3)} |")
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in targets(x):
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} | {t['goal']} | {met} |")
    return [*lines, ""]


def _fmt(v: Any, nd: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)
