"""Closed-loop non-stream load with ``wrk`` (C, one thread), parsed from a Lua ``done`` hook.

wrk is used for the throughput scenarios because a Python client on the shared load core would
saturate before the fastest variants do. The Lua script sets the POST body and prints one JSON
line of totals and latency percentiles, so nothing is scraped from human-readable output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import HarnessError, pinned

CDF_POINTS = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99)

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = '%(body)s'
local points = {%(points)s}
done = function(summary, latency, requests)
  local e = summary.errors
  local cdf = {}
  for i, p in ipairs(points) do
    cdf[#cdf + 1] = string.format('[%%s,%%d]', p, latency:percentile(p))
  end
  io.write(string.format('BENCHJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,' ..
    '"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,"max_us":%%d,"mean_us":%%f,' ..
    '"cdf":[%%s]}\\n', summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency.max, latency.mean, table.concat(cdf, ",")))
end
"""


def wrk_path() -> str:
    """The wrk binary; HarnessError telling how to install it when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise HarnessError("wrk is not installed: apt-get install wrk (Debian/Ubuntu package)")
    return path


def run_wrk(url: str, body: dict[str, Any], *, connections: int, duration: float, key: str,
            core: int | None, timeout_s: float = 10.0) -> dict[str, Any]:
    """Run wrk against ``url`` and return rps, latency percentiles (ms), errors and the CDF."""
    body_json = json.dumps(body, separators=(",", ":"))
    if "'" in body_json or "\\" in body_json:
        raise HarnessError("wrk body must not contain quotes or backslashes")
    script = _LUA % {"key": key, "body": body_json,
                     "points": ",".join(str(p) for p in CDF_POINTS)}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    dur = max(1, round(duration))
    cmd = pinned([wrk_path(), "-t1", f"-c{connections}", f"-d{dur}s",
                  f"--timeout={timeout_s:g}s", "-s", f.name, url], core)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"wrk did not finish: {exc}") from None
    finally:
        Path(f.name).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if out.returncode != 0 or line is None:
        raise HarnessError(f"wrk failed ({out.returncode}): {out.stderr.strip()[:500]}")
    raw = json.loads(line[len("BENCHJSON "):])
    seconds = raw["duration_us"] / 1e6
    cdf = [(float(p), us / 1000) for p, us in raw["cdf"]]
    pct = dict(cdf)
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {
        "tool": "wrk", "connections": connections, "duration_s": round(seconds, 2),
        "requests": raw["requests"], "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": pct[50.0], "p90_ms": pct[90.0], "p99_ms": pct[99.0], "p999_ms": pct[99.9],
        "max_ms": raw["max_us"] / 1000, "mean_ms": round(raw["mean_us"] / 1000, 3),
        "errors": errors,
        "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
        "cdf_ms": cdf,
    }
