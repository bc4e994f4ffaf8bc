"""Latency of a request with usage recording on versus off, side by side in one run.

    .venv/bin/python -m bench.usage_overhead [--seconds 2] [--rounds 16] [--baseline DIR]

Two gateways (1 gevent worker each, both pinned to core 0), one per setting, with the same
config, database and key (the master key); the mock upstream and wrk on core 1; 1 connection
(``--connections``: 64 gives the S1 shape, throughput) and 0 ms upstream (the S2 shape:
latency, not throughput). Both stay up and take turns in
short runs, the order alternating every round, so drift on the machine hits both. The report
gives each run and the median over rounds of the on/off ratios of p50, p99 and CPU per
request: the gateway's own (all its processes) and the database server's (PostgreSQL's
processes, read from /proc; it shares this machine's two cores). CPU is read after the
writer's next flush, so the records of the measured requests are paid for. Databases: the
embedded SQLite file, and PostgreSQL when it answers at 127.0.0.1:5432 (schema of its own,
dropped afterwards). With ``--baseline DIR`` (or ``BENCH_USAGE_BASELINE``) a third gateway
runs another checkout's code with usage on, in the same rotation: before/after in one run.
Writes ``bench/results/usage-overhead.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import Proc, _cpu, free_port, install_cleanup
from bench.servers import BIN, LOADGEN_CORE, MODEL, ROOT, VARIANT_CORE, start_mock
from bench.wrk import run_wrk

MASTER = "sk-bench-usage-master"
RESULTS = ROOT / "bench" / "results"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
FLUSH_WAIT = 1.3  # seconds: longer than the usage writer's flush interval (1 s default)


def _postgres_schema() -> tuple[str, str] | None:
    """A fresh schema on the local PostgreSQL: (url, schema), or None when unreachable."""
    try:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        schema = f"nrbench_usage_{secrets.token_hex(4)}"
        engine = create_engine(POSTGRES, isolation_level="AUTOCOMMIT",
                               connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False), schema
    except Exception as exc:  # noqa: BLE001 - report PostgreSQL as skipped, with the reason
        print(f"postgresql skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def _drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _git_head(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _postgres_cpu() -> float:
    """CPU seconds used so far by the local PostgreSQL server's processes."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += _cpu(int(entry.name))
            except OSError:
                continue
    return total


def _gateway(workdir: Path, upstream: str, database_url: str, usage: bool,
             app_dir: Path) -> tuple[Proc, int]:
    port = free_port()
    cfg = workdir / "models.yaml"
    cfg.write_text(f"models:\n  - name: {MODEL}\n    provider: openai\n    model: {MODEL}\n"
                   f"    api_base: {upstream}\n    input_cost_per_mtok: 1.0\n"
                   f"    output_cost_per_mtok: 2.0\n")
    env = {**os.environ, "NEUROROUTE_MASTER_KEY": MASTER, "NEUROROUTE_CONFIG": str(cfg),
           "NEUROROUTE_BIND": f"127.0.0.1:{port}", "NEUROROUTE_WORKERS": "1",
           "NEUROROUTE_DATABASE_URL": database_url, "NEUROROUTE_ACCESS_LOG": "false",
           "NEUROROUTE_USAGE_ENABLED": "true" if usage else "false"}
    # Gunicorn puts its cwd first on sys.path: app_dir decides which code serves.
    proc = Proc(f"gateway-usage-{'on' if usage else 'off'}",
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                core=VARIANT_CORE, log=workdir / "gateway.log", env=env, cwd=app_dir)
    proc.wait_port(port, timeout=30)
    return proc, port


def measure(database: str, database_url: str, upstream: str, seconds: float,
            rounds: int, baseline: Path | None = None, connections: int = 1
            ) -> dict[str, Any]:
    """``on`` and ``off`` (this checkout) and, with ``baseline``, ``on (baseline)``: the
    same measurement for another checkout with usage on."""
    from app.db.schema import upgrade

    upgrade(database_url)
    db_cpu = _postgres_cpu if database == "postgresql" else (lambda: 0.0)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    variants: dict[str, tuple[bool, Path]] = {"on": (True, ROOT), "off": (False, ROOT)}
    if baseline is not None:
        variants["on (baseline)"] = (True, baseline)
    runs: list[dict[str, Any]] = []
    # All gateways run for the whole measurement (same core, started once) and take turns in
    # short runs, the order rotating every round: drift on the machine hits all alike.
    gateways: dict[str, tuple[Proc, str]] = {}
    try:
        for name, (usage, app_dir) in variants.items():
            proc, port = _gateway(Path(tempfile.mkdtemp(prefix="bench-usage-")), upstream,
                                  database_url, usage, app_dir)
            gateways[name] = (proc, f"http://127.0.0.1:{port}/v1/chat/completions")
            run_wrk(gateways[name][1], body, connections=connections, duration=1, key=MASTER,
                    core=LOADGEN_CORE)  # warm-up: connections, caches, the first batch
        time.sleep(FLUSH_WAIT)
        names = list(variants)
        for round_no in range(rounds):
            shift = round_no % len(names)
            order = names[shift:] + names[:shift]
            if round_no % 2:
                order.reverse()
            for name in order:
                proc, url = gateways[name]
                cpu0, db0 = proc.cpu_seconds(), db_cpu()
                result = run_wrk(url, body, connections=connections, duration=seconds,
                                 key=MASTER, core=LOADGEN_CORE)
                # The records of these requests are written (and paid for) before the next
                # run starts, so no write lands in another gateway's measurement.
                time.sleep(FLUSH_WAIT)
                gw_cpu, server_cpu = proc.cpu_seconds() - cpu0, db_cpu() - db0
                requests = max(1, result["requests"])
                runs.append({"round": round_no, "variant": name,
                             **{k: result[k] for k in ("requests", "rps", "p50_ms", "p99_ms",
                                                       "errors")},
                             "gateway_cpu_us": gw_cpu / requests * 1e6,
                             "db_cpu_us": server_cpu / requests * 1e6})
    finally:
        for proc, _url in gateways.values():
            proc.stop()
    compared: dict[str, Any] = {}
    for name in names:
        if name == "off":
            continue
        ratios = []
        for round_no in range(rounds):
            on = next(r for r in runs if r["round"] == round_no and r["variant"] == name)
            off = next(r for r in runs if r["round"] == round_no and r["variant"] == "off")
            ratios.append({"round": round_no, "rps_ratio": on["rps"] / off["rps"],
                           "p50_ratio": on["p50_ms"] / off["p50_ms"],
                           "p99_ratio": on["p99_ms"] / off["p99_ms"],
                           "gateway_cpu_ratio": on["gateway_cpu_us"] / off["gateway_cpu_us"],
                           "total_cpu_ratio": (on["gateway_cpu_us"] + on["db_cpu_us"])
                           / (off["gateway_cpu_us"] + off["db_cpu_us"])})
        compared[name] = {"ratios": ratios, **{
            f"median_{key}": statistics.median(r[key] for r in ratios)
            for key in ("rps_ratio", "p50_ratio", "p99_ratio", "gateway_cpu_ratio",
                        "total_cpu_ratio")}}
    return {"database": database, "runs": runs, "vs_off": compared}


def report_md(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Usage recording overhead ({meta['date']}, git {meta['git']}, load average "
             f"{meta['loadavg']}, {meta['seconds']} s per run, "
             f"{meta.get('connections', 1)} connection(s), 0 ms upstream)",
             ""]
    if meta.get("baseline"):
        lines += [f"`on (baseline)`: usage on, the code of {meta['baseline']}.", ""]
    lines += ["| database | round | variant | requests | p50 ms | p99 ms | gateway CPU µs/req"
              " | DB server CPU µs/req | errors |", "|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for run in res["runs"]:
            lines.append(f"| {res['database']} | {run['round']} | {run['variant']} | "
                         f"{run['requests']} | {run['p50_ms']:.3f} | {run['p99_ms']:.3f} | "
                         f"{run['gateway_cpu_us']:.0f} | {run['db_cpu_us']:.0f} | "
                         f"{run['errors']} |")
    lines += ["", "Medians over the rounds of the per-round ratios to `off`:", "",
              "| database | variant | req/s / off | p50 / off | p99 / off | gateway CPU / off "
              "| gateway+DB CPU / off |", "|---|---|---|---|---|---|---|"]
    for res in results:
        for name, cmp in res["vs_off"].items():
            lines.append(f"| {res['database']} | {name} | {cmp['median_rps_ratio']:.3f} | "
                         f"{cmp['median_p50_ratio']:.3f} | "
                         f"{cmp['median_p99_ratio']:.3f} | "
                         f"{cmp['median_gateway_cpu_ratio']:.3f} | "
                         f"{cmp['median_total_cpu_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--baseline", type=Path, default=os.environ.get("BENCH_USAGE_BASELINE"),
                        help="another checkout (e.g. a `git worktree` of an older commit) "
                             "measured with usage on beside this one")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, help="report folder")
    args = parser.parse_args()
    install_cleanup()
    logdir = Path(tempfile.mkdtemp(prefix="bench-usage-mock-"))
    mock = start_mock(logdir)
    upstream = f"http://127.0.0.1:{mock.port}/v1"
    results = []
    try:
        sqlite = Path(tempfile.mkdtemp(prefix="bench-usage-db-")) / "usage.db"
        results.append(measure("sqlite", f"sqlite:///{sqlite}", upstream, args.seconds,
                               args.rounds, args.baseline, args.connections))
        pg = _postgres_schema()
        if pg is not None:
            try:
                results.append(measure("postgresql", pg[0], upstream, args.seconds,
                                       args.rounds, args.baseline, args.connections))
            finally:
                _drop_schema(pg[1])
    finally:
        mock.proc.stop()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "seconds": args.seconds, "connections": args.connections, "git": _git_head(ROOT),
            "baseline": f"{args.baseline} (git {_git_head(args.baseline)})"
            if args.baseline else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "usage-overhead.json").write_text(json.dumps({"meta": meta,
                                                             "results": results}, indent=2))
    markdown = report_md(results, meta)
    (args.out / "usage-overhead.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
