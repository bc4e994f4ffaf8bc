"""Smoke test of the load-test harness: every variant relays, a tiny run writes the report.

Fast (seconds): one stream and one non-stream request per variant, then a seconds-long run of
the runner itself. Free ports only; every process is stopped by the harness (process groups).
A variant whose optional dependency is missing is skipped here, and fails when CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import loadgen
from bench.servers import ROOT, VARIANTS, Server, full_mode_status, start_mock, start_variant

RELAYS = ("flask_relay", "fastapi_httpx", "aiohttp_relay", "neuroroute", "neuroroute_full")
CI = os.environ.get("CI", "").lower() == "true"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}


def _require(what: str, missing: list[str]) -> None:
    if missing:
        message = f"{what}: missing {', '.join(missing)} (pip install -e '.[bench]')"
        if what == "neuroroute_full":
            message = f"{what}: {missing[0]} (start PostgreSQL and Redis, or set " \
                      "BENCH_DATABASE_URL / BENCH_REDIS_URL)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require("mock upstream", VARIANTS["aiohttp_relay"].missing())
    srv = start_mock(tmp_path_factory.mktemp("logs"))
    yield srv
    srv.proc.stop()


def _once(srv: Server, stream: bool) -> dict[str, object]:
    return loadgen.run({"mode": "once", "host": "127.0.0.1", "port": srv.port,
                        "path": "/v1/chat/completions", "key": srv.api_key,
                        "body": {**BODY, "stream": stream}, "timeout": 10})


@pytest.mark.parametrize("name", RELAYS)
def test_variant_relays_stream_and_non_stream(name: str, mock: Server, tmp_path: Path) -> None:
    _require(name, VARIANTS[name].missing())
    if name == "neuroroute_full":  # PostgreSQL + Redis, a DB-backed client key
        why = full_mode_status(dict(os.environ))
        _require(name, [why] if why else [])
    srv = start_variant(name, mock.url + "/v1", tmp_path, dict(os.environ))
    try:
        plain = _once(srv, stream=False)
        assert plain["status"] == 200, plain
        assert json.loads(str(plain["body"]))["choices"][0]["message"]["content"]
        stream = _once(srv, stream=True)
        assert stream["status"] == 200, stream
        assert stream["complete"] and stream["done"] and not stream["error_event"], stream
        assert int(str(stream["events"])) >= 3  # role, content..., finish, [DONE]
        if name == "neuroroute_full":
            assert srv.api_key.startswith("sk-nr-")  # a DB-backed key, not the master key
    finally:
        srv.proc.stop()


def test_tiny_run_writes_report(tmp_path: Path) -> None:
    _require("report", VARIANTS["aiohttp_relay"].missing()
             + ([] if shutil.which("wrk") else ["wrk (apt-get install wrk)"]))
    _require("plots", [m for m in ("matplotlib",) if not _importable(m)])
    out = subprocess.run([sys.executable, "-m", "bench.run", "--tiny", "--variants",
                          "direct,neuroroute", "--scenarios", "S1,S4", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    res = json.loads((tmp_path / "latest.json").read_text())
    assert res["runs"]["neuroroute"]["status"] == "ok"
    assert res["runs"]["neuroroute"]["scenarios"]["S1"]["rps"] > 0
    assert "NeuroRoute minimal" in (tmp_path / "latest.md").read_text()
    for png in ("throughput.png", "latency_cdf.png", "rss.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_usage_sinks_bench_writes_its_report(tmp_path: Path) -> None:
    # A subprocess: the bench monkey-patches gevent at import, as a worker does.
    proc = subprocess.run([sys.executable, "-m", "bench.usage_sinks", "--batches", "2",
                           "--batch-size", "20", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "usage-sinks.json").read_text())["results"]
    databases = [r["database"] for r in results]
    if "postgresql" not in databases:  # the bench skips PostgreSQL when it does not answer
        message = f"PostgreSQL at 127.0.0.1:5432 not reachable: {proc.stderr.strip()}"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    for res in results:
        # a warm-up batch per sink, then 2 batches per sink
        assert len(res["sinks"]) == 2 and res["records"] == 2 * 20 + 2 * 2 * 20
        assert all(row["client_us"] > 0 for row in res["sinks"].values())
    assert "| sqlite | sqlite sink |" in (tmp_path / "usage-sinks.md").read_text()
