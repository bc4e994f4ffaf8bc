"""CPU per usage record of each way to write a batch, side by side in one run.

    .venv/bin/python -m bench.usage_sinks [--batches 20] [--batch-size 250]

Runs as a gevent worker does (monkey-patched, psycopg2 in green mode) and writes the same
batches through the generic SQLAlchemy Core sink and through the backend's own sink
(``app/usage/store.py``), alternating, into the embedded SQLite file and into PostgreSQL at
127.0.0.1:5432 when it answers (a schema of its own, dropped afterwards). Reports the
gateway process's CPU per record (``time.process_time``: every thread, the SQLite sink's
native one included) and, for PostgreSQL, the server processes' CPU per record (/proc).
Writes ``bench/results/usage-sinks.json`` and ``.md``.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after the gevent patch, as in a worker
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()

from bench.usage_overhead import (  # noqa: E402
    RESULTS,
    _drop_schema,
    _postgres_cpu,
    _postgres_schema,
)


def _records(count: int, start: int) -> list[Any]:
    from app.usage.writer import UsageRecord

    now = time.time()
    return [UsageRecord(request_id=f"bench-{start + i:012d}", created_at=now, key_id="key_1",
                        user_id=None, team_id="team_1", model="gpt-4o-mini",
                        deployment="gpt-4o-mini-0", provider="openai", prompt_tokens=12,
                        completion_tokens=24, total_tokens=36, cached_tokens=0,
                        estimated=False, cost=0.0000123, price_known=True, latency_ms=1.234,
                        ttft_ms=None, status=200, error_code=None, stream=False,
                        cache_hit=False, cancelled=False, attempts=1, route=None)
            for i in range(count)]


def measure(database: str, url: str, batches: int, size: int) -> dict[str, Any]:
    from app.db.engine import Database, build_engine
    from app.db.schema import upgrade
    from app.usage import store

    upgrade(url)
    db = Database(build_engine(url))
    server_cpu: Callable[[], float] = _postgres_cpu if database == "postgresql" else (
        lambda: 0.0)
    sinks = {"sqlalchemy core insert": store.DatabaseUsageSink(db),
             f"{database} sink": store.usage_sink(db)}
    samples: dict[str, dict[str, list[float]]] = {
        name: {"client": [], "server": []} for name in sinks}
    written = 0
    for sink in sinks.values():  # warm-up: connections, compiled statements
        sink.write(_records(size, written))
        written += size
    for _ in range(batches):
        for name, sink in sinks.items():
            batch = _records(size, written)
            written += size
            cpu0, db0 = time.process_time(), server_cpu()
            sink.write(batch)
            samples[name]["client"].append((time.process_time() - cpu0) / size * 1e6)
            samples[name]["server"].append((server_cpu() - db0) / size * 1e6)
    db.dispose()
    out = {name: {"client_us": statistics.median(s["client"]),
                  "server_us": statistics.mean(s["server"])} for name, s in samples.items()}
    return {"database": database, "records": written, "sinks": out}


def report_md(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Usage sinks: CPU per record ({meta['date']}, {meta['batches']} batches of "
             f"{meta['batch_size']} per sink, alternating)", "",
             "| database | sink | gateway CPU µs/record (median) | DB server CPU µs/record "
             "(mean) |", "|---|---|---|---|"]
    for res in results:
        for name, row in res["sinks"].items():
            lines.append(f"| {res['database']} | {name} | {row['client_us']:.1f} | "
                         f"{row['server_us']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--out", type=Path, default=RESULTS, help="report folder")
    args = parser.parse_args()
    results = [measure("sqlite", f"sqlite:///{tempfile.mkdtemp(prefix='bench-sinks-')}/u.db",
                       args.batches, args.batch_size)]
    pg = _postgres_schema()
    if pg is not None:
        try:
            results.append(measure("postgresql", pg[0], args.batches, args.batch_size))
        finally:
            _drop_schema(pg[1])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "batches": args.batches, "batch_size": args.batch_size}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "usage-sinks.json").write_text(json.dumps({"meta": meta, "results": results},
                                                          indent=2))
    markdown = report_md(results, meta)
    (args.out / "usage-sinks.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
