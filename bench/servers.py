"""What the harness can start: the mock upstream and every relay variant, as pinned processes.

Every variant gets one process (one worker), core ``VARIANT_CORE``; the mock upstream and the
load generator share ``LOADGEN_CORE``. The same connection limits are given to every server so
that no variant is measured against a smaller pool or a lower accept limit than the others.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import HarnessError, Proc, free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
VARIANT_CORE = 0
LOADGEN_CORE = 1
MASTER_KEY = "sk-bench-master-key"
MODEL = "bench"
WORKER_CONNECTIONS = "4000"  # above the largest scenario (2,000 streams) for every gevent server
# Env vars the NeuroRoute "full" mode hands to the gateway (DB-backed keys, usage, Redis).
FULL_MODE_ENV = ("NEUROROUTE_DATABASE_URL", "NEUROROUTE_REDIS_URL")


@dataclass
class Server:
    """A started server: its process, port and base URL (``http://127.0.0.1:port``)."""

    name: str
    proc: Proc
    port: int
    api_key: str = MASTER_KEY
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Variant:
    """A relay under test: ``requires`` are the optional imports it needs."""

    name: str
    label: str
    requires: tuple[str, ...]

    def missing(self) -> list[str]:
        """Optional modules that are not importable here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


VARIANTS: dict[str, Variant] = {
    "flask_relay": Variant(
        "flask_relay", "Flask+gevent+requests (bare)", ("flask", "gevent", "gunicorn", "requests")
    ),
    "fastapi_httpx": Variant(
        "fastapi_httpx", "FastAPI+httpx (uvicorn)", ("fastapi", "httpx", "uvicorn")
    ),
    "aiohttp_relay": Variant("aiohttp_relay", "aiohttp relay", ("aiohttp",)),
    "neuroroute": Variant("neuroroute", "NeuroRoute minimal", ("flask", "gevent", "gunicorn")),
    "neuroroute_full": Variant("neuroroute_full", "NeuroRoute full", ("flask", "gevent")),
}


def full_mode_status(env: dict[str, str]) -> str | None:
    """None if NeuroRoute's full mode can run, else why not (shown in the report).

    Full mode needs the app to read the database/Redis settings (it does not yet) and the
    operator to point the harness at them via ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``.
    """
    source = (ROOT / "app" / "settings.py").read_text()
    absent = [var for var in FULL_MODE_ENV if var not in source]
    if absent:
        return f"not available yet: the app does not read {', '.join(absent)}"
    if not env.get("BENCH_DATABASE_URL") or not env.get("BENCH_REDIS_URL"):
        return "skipped: set BENCH_DATABASE_URL and BENCH_REDIS_URL (and BENCH_FULL_API_KEY)"
    return None


def start_mock(logdir: Path, env: dict[str, str] | None = None) -> Server:
    """The mock upstream on the load-generator core."""
    port = free_port()
    proc = Proc(
        "mock",
        [PY, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(port)],
        core=LOADGEN_CORE,
        log=logdir / "mock.log",
        env=env,
        cwd=ROOT,
    )
    proc.wait_port(port)
    return Server("mock", proc, port)


def start_variant(name: str, upstream: str, logdir: Path, env: dict[str, str]) -> Server:
    """Start variant ``name`` relaying to ``upstream`` (``http://host:port/v1``)."""
    port = free_port()
    log = logdir / f"{name}.log"
    base_env = {"BENCH_UPSTREAM": upstream, "PYTHONUNBUFFERED": "1"}
    api_key = MASTER_KEY
    workdir = ROOT
    if name in ("fastapi_httpx", "aiohttp_relay"):
        cmd = [PY, "-m", f"bench.variants.{name}", "--port", str(port), "--upstream", upstream]
    elif name == "flask_relay":
        # An explicit empty config: Gunicorn would otherwise load NeuroRoute's ./gunicorn.conf.py.
        cmd = [
            str(BIN / "gunicorn"),
            "-c",
            "/dev/null",
            "-k",
            "gevent",
            "-w",
            "1",
            "--worker-connections",
            WORKER_CONNECTIONS,
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
            "bench.variants.flask_relay:app",
        ]
    elif name in ("neuroroute", "neuroroute_full"):
        cfg = Path(tempfile.mkdtemp(prefix="bench-nr-")) / "neuroroute.yaml"
        cfg.write_text(
            f"models:\n  - name: {MODEL}\n    provider: openai\n    model: {MODEL}\n"
            f"    api_base: {upstream}\n"
        )
        # Its own database, migrated like `make run` does (workers refuse an old schema).
        database_url = f"sqlite:///{cfg.parent / 'neuroroute.db'}"
        base_env.update(
            NEUROROUTE_MASTER_KEY=MASTER_KEY,
            NEUROROUTE_CONFIG=str(cfg),
            NEUROROUTE_BIND=f"127.0.0.1:{port}",
            NEUROROUTE_WORKERS="1",
            NEUROROUTE_WORKER_CONNECTIONS=WORKER_CONNECTIONS,
            NEUROROUTE_DATABASE_URL=database_url,
        )
        if name == "neuroroute_full":
            base_env.update(
                NEUROROUTE_DATABASE_URL=env.get("BENCH_DATABASE_URL", ""),
                NEUROROUTE_REDIS_URL=env.get("BENCH_REDIS_URL", ""),
            )
            api_key = env.get("BENCH_FULL_API_KEY") or MASTER_KEY
        from app.db.schema import upgrade

        upgrade(base_env["NEUROROUTE_DATABASE_URL"])
        cmd = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
        # BENCH_NEUROROUTE_DIR: another checkout of the app (e.g. `git archive` of a base
        # commit) for before/after comparisons; Gunicorn puts its cwd first on sys.path.
        workdir = Path(env.get("BENCH_NEUROROUTE_DIR") or ROOT)
    else:
        raise HarnessError(f"unknown variant {name!r}")
    proc = Proc(name, cmd, core=VARIANT_CORE, log=log, env={**env, **base_env}, cwd=workdir)
    proc.wait_port(port, timeout=30)
    return Server(name, proc, port, api_key=api_key)
