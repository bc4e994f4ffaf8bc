"""Benchmark runner: start each variant pinned to its core, run the scenarios, write the report.

    python -m bench.run            # full profile (make bench)
    python -m bench.run --quick    # reduced subset, < 3 min (make bench-quick)
    python -m bench.run --variants neuroroute,flask_relay --scenarios S1,S2 --profile-app

``direct`` is the load generator straight at the mock upstream: the mock's own ceiling and the
baseline that "added latency" is measured against. Exits non-zero on any harness error (a server
that does not start, a tool that is missing, a load run that overruns); the report is still
written with what was measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, sidebyside
from bench.procs import HarnessError, Proc, install_cleanup, pinned
from bench.scenarios import PROFILES, SCENARIOS, Profile, loadavg, warmup
from bench.servers import (
    LOADGEN_CORE,
    ROOT,
    VARIANTS,
    Server,
    full_mode_status,
    start_mock,
    start_variant,
)
from bench.wrk import wrk_path

DEFAULT_ORDER = ("direct", "flask_relay", "fastapi_httpx", "aiohttp_relay", "neuroroute",
                 "neuroroute_full")


def _raise_nofile() -> None:
    # 2,000 streams need ~6,000 descriptors across client, relay and mock; children inherit.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _git(path: Path = ROOT) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_target(name: str, p: Profile, scenarios: list[str], logdir: Path) -> dict[str, Any]:
    """Start a fresh mock (+ the variant), warm up, run each scenario; always stop both."""
    label = "mock upstream (direct)" if name == "direct" else VARIANTS[name].label
    out: dict[str, Any] = {"label": label, "scenarios": {}}
    if name == "neuroroute_full":
        why = full_mode_status(dict(os.environ))
        if why:
            return {**out, "status": why}
    if name != "direct":
        missing = VARIANTS[name].missing()
        if missing:
            return {**out, "status": f"skipped: missing {', '.join(missing)}"}
    started: list[Proc] = []
    try:
        mock = start_mock(logdir)
        started.append(mock.proc)
        srv: Server = mock
        if name != "direct":
            srv = start_variant(name, mock.url + "/v1", logdir, dict(os.environ))
            started.append(srv.proc)
        out["pids"] = {"server": srv.proc.pid, "children": srv.proc.child_pids()}
        warmup(srv, p)
        for sc in scenarios:
            t0 = time.monotonic()
            print(f"  {name} {sc} ...", end="", flush=True)
            out["scenarios"][sc] = SCENARIOS[sc](srv, p)
            print(f" {time.monotonic() - t0:.1f}s", flush=True)
        out["status"] = "ok"
        return out
    finally:
        for proc in reversed(started):
            proc.stop()


def profile_app(p: Profile, logdir: Path, outdir: Path) -> dict[str, str]:
    """py-spy NeuroRoute minimal's worker under S1 and S4 load; writes collapsed stacks.

    S4 is profiled at its first stream level only (steady streaming, no idle phase).
    py-spy runs on the load core, so it does not take CPU from the worker it samples;
    ``--gil`` keeps only samples of the thread holding the GIL (idle pool threads are noise).
    """
    from bench.profile_summary import summarise
    from bench.scenarios import _stream_cfg, body, loadgen, s1

    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise HarnessError("py-spy is not installed: pip install py-spy (bench extra)")
    level = p.s4_levels[0]
    stream_body = body(True, tokens=p.s4_tokens, interval_ms=p.s4_interval_ms)
    runs = (("S1", p.s1_s, lambda srv: s1(srv, p)),
            ("S4", p.s4_s, lambda srv: loadgen(_stream_cfg(srv, p, level, p.s4_s, stream_body),
                                               p.s4_s + 60)))
    files = {}
    for sc, secs, load in runs:
        mock = start_mock(logdir)
        srv = start_variant("neuroroute", mock.url + "/v1", logdir, dict(os.environ))
        try:
            warmup(srv, p)
            worker = srv.proc.child_pids()[0]
            dest = outdir / f"profile-{sc}.collapsed.txt"
            spy_proc = subprocess.Popen(pinned(
                [str(spy), "record", "-p", str(worker), "-d", str(int(secs)), "-r", "200",
                 "-f", "raw", "--gil", "-o", str(dest)], LOADGEN_CORE),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            load(srv)
            try:
                spy_proc.wait(timeout=secs + 30)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait()
            if not dest.exists():
                raise HarnessError(f"py-spy wrote no profile for {sc} (ptrace not allowed?)")
            top = outdir / f"profile-{sc}.top.txt"
            top.write_text(summarise(dest) + "\n")
            files[sc] = str(top)
        finally:
            srv.proc.stop()
            mock.proc.stop()
    return files


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced subset (< 3 min)")
    ap.add_argument("--tiny", action="store_true", help="seconds-long run (smoke test)")
    ap.add_argument("--variants", default=",".join(DEFAULT_ORDER))
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S5")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--profile-app", action="store_true",
                    help="also py-spy NeuroRoute under S1 and S4 (collapsed stacks)")
    ap.add_argument("--baseline", type=Path, default=os.environ.get("BENCH_BASELINE_DIR"),
                    help="another checkout (a `git worktree` of an older commit): its minimal "
                         "and full modes join the side-by-side rounds")
    ap.add_argument("--no-side-by-side", action="store_true",
                    help="skip the side-by-side rounds of the issue-10 targets")
    args = ap.parse_args(argv)
    install_cleanup()
    _raise_nofile()
    p = PROFILES["tiny" if args.tiny else "quick" if args.quick else "full"]
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n != "direct" and n not in VARIANTS] + [
        s for s in scenarios if s not in SCENARIOS]
    if unknown:
        print(f"unknown variant/scenario: {', '.join(unknown)}", file=sys.stderr)
        return 2
    outdir = Path(args.out)
    logdir = outdir / f"run-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    failed = False
    try:
        wrk_path()
    except HarnessError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    res: dict[str, Any] = {
        "profile": p.name, "settings": p.__dict__ | {"scenarios": scenarios},
        "meta": {"started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 "cpus": os.cpu_count(), "python": platform.python_version(), "git": _git(),
                 "loadavg_start": loadavg(), "variant_core": 0, "loadgen_core": LOADGEN_CORE,
                 "logs": str(logdir)},
        "runs": {},
    }
    t_start = time.monotonic()
    for name in names:
        print(f"[{time.monotonic() - t_start:6.1f}s] {name}", flush=True)
        try:
            res["runs"][name] = run_target(name, p, scenarios, logdir)
        except (HarnessError, OSError, KeyError, ValueError) as exc:
            failed = True
            traceback.print_exc()
            res["runs"][name] = {"label": VARIANTS[name].label if name in VARIANTS else name,
                                 "status": f"error: {exc}".splitlines()[0][:200],
                                 "scenarios": {}}
    if not args.no_side_by_side:
        side = ["flask_relay", "neuroroute", "neuroroute_full"]
        env = dict(os.environ)
        if args.baseline:
            env["BENCH_BASELINE_DIR"] = str(args.baseline)
            side += ["neuroroute_base", "neuroroute_full_base"]
            res["meta"]["baseline"] = f"{args.baseline} (git {_git(args.baseline)})"
        if full_mode_status(env):
            side = [n for n in side if not n.startswith("neuroroute_full")]
        print(f"[{time.monotonic() - t_start:6.1f}s] side by side: {', '.join(side)}", flush=True)
        try:
            res["side_by_side"] = sidebyside.run(p, logdir, env, side, p.x_rounds)
            for name in side:
                res["runs"].setdefault(name, {"label": VARIANTS[name].label,
                                              "status": "side by side only", "scenarios": {}})
        except (HarnessError, OSError, KeyError, ValueError) as exc:
            failed = True
            traceback.print_exc()
            res["side_by_side_error"] = str(exc).splitlines()[0][:200]
    if args.profile_app:
        try:
            res["meta"]["profiles"] = profile_app(p, logdir, outdir)
        except HarnessError as exc:
            failed = True
            print(f"bench: profiling failed: {exc}", file=sys.stderr)
    res["meta"]["loadavg_end"] = loadavg()
    res["meta"]["elapsed_s"] = round(time.monotonic() - t_start, 1)
    for path in report.write(res, outdir):
        print(f"wrote {path}")
    print(f"done in {res['meta']['elapsed_s']}s; load average {res['meta']['loadavg_start']} "
          f"-> {res['meta']['loadavg_end']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
