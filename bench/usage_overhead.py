"""Latency of a request with usage recording on versus off, side by side in one run.

    .venv/bin/python -m bench.usage_overhead [--seconds 6] [--rounds 3]

One gateway process (1 gevent worker, pinned to core 0) per setting, the mock upstream and
wrk on core 1, the same config, database and key (the master key); 1 connection and 0 ms
upstream (the S2 shape: latency, not throughput). Rounds alternate on/off so drift hits
both; the report gives each round and the median of the p50/p99 ratios. Databases: the
embedded SQLite file, and PostgreSQL when it answers at 127.0.0.1:5432 (schema of its own,
dropped afterwards). Writes ``bench/results/usage-overhead.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import Proc, free_port, install_cleanup
from bench.servers import BIN, LOADGEN_CORE, MODEL, ROOT, VARIANT_CORE, start_mock
from bench.wrk import run_wrk

MASTER = "sk-bench-usage-master"
RESULTS = ROOT / "bench" / "results"
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


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


def _gateway(workdir: Path, upstream: str, database_url: str, usage: bool) -> tuple[Proc, int]:
    port = free_port()
    cfg = workdir / "models.yaml"
    cfg.write_text(f"models:\n  - name: {MODEL}\n    provider: openai\n    model: {MODEL}\n"
                   f"    api_base: {upstream}\n    input_cost_per_mtok: 1.0\n"
                   f"    output_cost_per_mtok: 2.0\n")
    env = {**os.environ, "NEUROROUTE_MASTER_KEY": MASTER, "NEUROROUTE_CONFIG": str(cfg),
           "NEUROROUTE_BIND": f"127.0.0.1:{port}", "NEUROROUTE_WORKERS": "1",
           "NEUROROUTE_DATABASE_URL": database_url, "NEUROROUTE_ACCESS_LOG": "false",
           "NEUROROUTE_USAGE_ENABLED": "true" if usage else "false"}
    proc = Proc(f"gateway-usage-{'on' if usage else 'off'}",
                [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                core=VARIANT_CORE, log=workdir / f"gateway-{usage}.log", env=env, cwd=ROOT)
    proc.wait_port(port, timeout=30)
    return proc, port


def measure(database: str, database_url: str, upstream: str, seconds: float,
            rounds: int) -> dict[str, Any]:
    from app.db.schema import upgrade

    upgrade(database_url)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    runs: list[dict[str, Any]] = []
    for round_no in range(rounds):
        for usage in (True, False) if round_no % 2 == 0 else (False, True):
            workdir = Path(tempfile.mkdtemp(prefix="bench-usage-"))
            proc, port = _gateway(workdir, upstream, database_url, usage)
            try:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                run_wrk(url, body, connections=1, duration=1, key=MASTER,
                        core=LOADGEN_CORE)  # warm-up
                result = run_wrk(url, body, connections=1, duration=seconds, key=MASTER,
                                 core=LOADGEN_CORE)
            finally:
                proc.stop()
            runs.append({"round": round_no, "usage": usage,
                         **{k: result[k] for k in ("requests", "rps", "p50_ms", "p99_ms",
                                                   "errors")}})
    ratios = []
    for round_no in range(rounds):
        on = next(r for r in runs if r["round"] == round_no and r["usage"])
        off = next(r for r in runs if r["round"] == round_no and not r["usage"])
        ratios.append({"round": round_no, "p50_ratio": on["p50_ms"] / off["p50_ms"],
                       "p99_ratio": on["p99_ms"] / off["p99_ms"]})
    return {"database": database, "runs": runs, "ratios": ratios,
            "median_p50_ratio": statistics.median(r["p50_ratio"] for r in ratios),
            "median_p99_ratio": statistics.median(r["p99_ratio"] for r in ratios)}


def report_md(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Usage recording overhead ({meta['date']}, load average "
             f"{meta['loadavg']}, {meta['seconds']} s per run, 1 connection, 0 ms upstream)",
             "", "| database | round | usage | requests | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        for run in res["runs"]:
            lines.append(f"| {res['database']} | {run['round']} | "
                         f"{'on' if run['usage'] else 'off'} | {run['requests']} | "
                         f"{run['p50_ms']:.3f} | {run['p99_ms']:.3f} | {run['errors']} |")
    lines += ["", "| database | median p50 on/off | median p99 on/off |", "|---|---|---|"]
    for res in results:
        lines.append(f"| {res['database']} | {res['median_p50_ratio']:.3f} | "
                     f"{res['median_p99_ratio']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    install_cleanup()
    logdir = Path(tempfile.mkdtemp(prefix="bench-usage-mock-"))
    mock = start_mock(logdir)
    upstream = f"http://127.0.0.1:{mock.port}/v1"
    results = []
    try:
        sqlite = Path(tempfile.mkdtemp(prefix="bench-usage-db-")) / "usage.db"
        results.append(measure("sqlite", f"sqlite:///{sqlite}", upstream, args.seconds,
                               args.rounds))
        pg = _postgres_schema()
        if pg is not None:
            try:
                results.append(measure("postgresql", pg[0], upstream, args.seconds,
                                       args.rounds))
            finally:
                _drop_schema(pg[1])
    finally:
        mock.proc.stop()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "seconds": args.seconds}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "usage-overhead.json").write_text(json.dumps({"meta": meta,
                                                             "results": results}, indent=2))
    markdown = report_md(results, meta)
    (RESULTS / "usage-overhead.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
