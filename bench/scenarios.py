"""The scenarios S1..S5, each bounded in time, run against one started server.

Each function takes the server under test and a profile (durations, connection counts) and
returns a plain dict for the report. The 1-minute load average is recorded before each
scenario because other test suites share this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from bench.procs import HarnessError, RSSSampler, pinned
from bench.servers import LOADGEN_CORE, MODEL, PY, ROOT, Server
from bench.wrk import run_wrk

PATH = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
MB = 1024 * 1024


@dataclass(frozen=True)
class Profile:
    """How long and how hard each scenario runs (``full``, ``quick`` or ``tiny``)."""

    name: str
    warmup_s: float
    s1_conns: int
    s1_s: float
    s2_s: float
    s3_conns: int
    s3_s: float
    s3_latency_ms: int
    s4_levels: tuple[int, ...]
    s4_s: float
    s4_ramp_s: float
    s4_tokens: int
    s4_interval_ms: int
    s4_idle_streams: int
    s4_idle_hold_ms: int
    s5_rates: tuple[int, ...]
    s5_s: float
    stall_ms: float = 200.0
    s5_p99_limit_ms: float = 100.0
    x_rounds: int = 3  # side-by-side rounds (bench.sidebyside)
    scenarios: tuple[str, ...] = field(default=("S1", "S2", "S3", "S4", "S5"))


PROFILES = {
    "full": Profile("full", warmup_s=3, s1_conns=64, s1_s=10, s2_s=8, s3_conns=1000, s3_s=10,
                    s3_latency_ms=500, s4_levels=(500, 2000), s4_s=8, s4_ramp_s=2,
                    s4_tokens=64, s4_interval_ms=20, s4_idle_streams=2000,
                    s4_idle_hold_ms=6000,
                    s5_rates=(250, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6000),
                    s5_s=5, x_rounds=9),
    "quick": Profile("quick", warmup_s=1, s1_conns=64, s1_s=3, s2_s=2, s3_conns=300, s3_s=3,
                     s3_latency_ms=500, s4_levels=(300,), s4_s=2.5, s4_ramp_s=1, s4_tokens=64,
                     s4_interval_ms=20, s4_idle_streams=300, s4_idle_hold_ms=2000,
                     s5_rates=(500, 1000, 2000, 4000), s5_s=1.5, x_rounds=3),
    "tiny": Profile("tiny", warmup_s=0.5, s1_conns=8, s1_s=1, s2_s=1, s3_conns=20, s3_s=1,
                    s3_latency_ms=100, s4_levels=(10,), s4_s=1, s4_ramp_s=0.2, s4_tokens=8,
                    s4_interval_ms=20, s4_idle_streams=10, s4_idle_hold_ms=1200,
                    s5_rates=(100,), s5_s=1, x_rounds=1),
}


def body(stream: bool = False, **mock: Any) -> dict[str, Any]:
    """A chat completion body; ``mock`` controls the upstream (passed through by relays)."""
    out: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream": stream}
    if mock:
        out["mock"] = mock
    return out


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def loadgen(cfg: dict[str, Any], budget_s: float) -> dict[str, Any]:
    """Run ``bench.loadgen`` pinned to the load core; HarnessError if it fails or overruns."""
    cmd = pinned([PY, "-m", "bench.loadgen", json.dumps(cfg)], LOADGEN_CORE)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"loadgen overran its {budget_s:.0f}s budget") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise HarnessError(f"loadgen failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _wrk(srv: Server, b: dict[str, Any], conns: int, secs: float) -> dict[str, Any]:
    cpu0 = srv.proc.cpu_seconds()
    with RSSSampler(srv.proc) as rss:
        res = run_wrk(srv.url + PATH, b, connections=conns, duration=secs, key=srv.api_key,
                      core=LOADGEN_CORE)
    # CPU time per request of the server under test: unlike req/s, it hardly moves when
    # other jobs on the machine take turns on the same core.
    res["cpu_us_per_req"] = round((srv.proc.cpu_seconds() - cpu0) / max(res["requests"], 1)
                                  * 1e6, 1)
    res["peak_rss_mb"] = round(rss.peak / MB, 1)
    return res


def warmup(srv: Server, p: Profile) -> None:
    """Fill pools, caches and lazy imports before anything is measured (results discarded)."""
    run_wrk(srv.url + PATH, body(), connections=16, duration=p.warmup_s, key=srv.api_key,
            core=LOADGEN_CORE)
    stream_cfg = _stream_cfg(srv, p, 16, p.warmup_s, body(True, tokens=4))
    loadgen(stream_cfg, p.warmup_s + 30)


def s1(srv: Server, p: Profile) -> dict[str, Any]:
    """CPU-bound relay: non-stream, 0 ms upstream, ``s1_conns`` connections."""
    return {"loadavg": loadavg(), **_wrk(srv, body(), p.s1_conns, p.s1_s)}


def s2(srv: Server, p: Profile) -> dict[str, Any]:
    """Light load: one connection, 0 ms upstream (added latency is computed in the report)."""
    return {"loadavg": loadavg(), **_wrk(srv, body(), 1, p.s2_s)}


def s3(srv: Server, p: Profile) -> dict[str, Any]:
    """I/O-bound: non-stream, ``s3_latency_ms`` upstream, ``s3_conns`` connections."""
    res = _wrk(srv, body(latency_ms=p.s3_latency_ms), p.s3_conns, p.s3_s)
    res["ideal_rps"] = round(p.s3_conns / (p.s3_latency_ms / 1000), 1)
    return {"loadavg": loadavg(), **res}


def _stream_cfg(srv: Server, p: Profile, n: int, secs: float, b: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    return {"mode": "streams", "host": "127.0.0.1", "port": srv.port, "path": PATH,
            "key": srv.api_key, "body": b, "concurrency": n, "duration": secs,
            "ramp": p.s4_ramp_s, "stall_ms": p.stall_ms, "grace": 15, **extra}


def s4(srv: Server, p: Profile) -> dict[str, Any]:
    """Streams: each level of concurrent streams, then RSS per idle open stream."""
    out: dict[str, Any] = {"levels": {}}
    # Idle streams first, while the heap has not yet grown under the stream levels (a heap
    # that already grew would hide the cost): headers and the first event are through, the
    # upstream then stays silent for idle_hold_ms; RSS growth over the baseline / streams.
    n = p.s4_idle_streams
    base = srv.proc.rss_bytes()
    idle = body(True, tokens=1, ttft_ms=p.s4_idle_hold_ms)
    la = loadavg()
    with RSSSampler(srv.proc, interval=0.05) as rss:
        res = loadgen(_stream_cfg(srv, p, n, 0, idle, once=True),
                      p.s4_ramp_s + p.s4_idle_hold_ms / 1000 + 60)
    out["idle"] = {"loadavg": la, "streams": n, "errors": res["errors"],
                   "base_rss_mb": round(base / MB, 1), "peak_rss_mb": round(rss.peak / MB, 1),
                   "rss_per_stream_kb": round((rss.peak - base) / max(n, 1) / 1024, 1)}
    b = body(True, tokens=p.s4_tokens, interval_ms=p.s4_interval_ms)
    for n in p.s4_levels:
        la = loadavg()
        with RSSSampler(srv.proc) as rss:
            res = loadgen(_stream_cfg(srv, p, n, p.s4_s, b), p.s4_ramp_s + p.s4_s + 60)
        out["levels"][str(n)] = {"loadavg": la, **res, "peak_rss_mb": round(rss.peak / MB, 1)}
        time.sleep(0.5)
    return out


def s5(srv: Server, p: Profile) -> dict[str, Any]:
    """Open loop: step the arrival rate up until p99 > limit, errors, or the rate is missed."""
    steps = []
    best = 0
    for rate in p.s5_rates:
        la = loadavg()
        cfg = {"mode": "open", "host": "127.0.0.1", "port": srv.port, "path": PATH,
               "key": srv.api_key, "body": body(), "rate": rate, "duration": p.s5_s,
               "grace": 5, "max_conns": 1024}
        res = loadgen(cfg, p.s5_s + 60)
        ok = (res["errors"] == 0 and res["latency"].get("p99_ms", 1e9) <= p.s5_p99_limit_ms
              and res["completed"] >= 0.97 * res["sent"])
        steps.append({"loadavg": la, "ok": ok, **res})
        if not ok:
            break
        best = rate
        time.sleep(0.3)
    return {"p99_limit_ms": p.s5_p99_limit_ms, "max_sustained_rps": best, "steps": steps}


SCENARIOS = {"S1": s1, "S2": s2, "S3": s3, "S4": s4, "S5": s5}
