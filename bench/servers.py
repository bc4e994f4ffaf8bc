"""What the harness can start: the mock upstream and every relay variant, as pinned processes.

Every variant gets one process (one worker), core ``VARIANT_CORE``; the mock upstream and the
load generator share ``LOADGEN_CORE``. The same connection limits are given to every server so
that no variant is measured against a smaller pool or a lower accept limit than the others.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import HarnessError, Proc, free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
VARIANT_CORE = 0
LOADGEN_CORE = 1
MASTER_KEY = "sk-bench-master-key"
MODEL = "bench"
WORKER_CONNECTIONS = "4000"  # above the largest scenario (2,000 streams) for every gevent server
# NeuroRoute "full" mode (DB-backed keys, usage in PostgreSQL, per-key limits in Redis): the
# local services unless BENCH_DATABASE_URL / BENCH_REDIS_URL say otherwise.
DEFAULT_FULL_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
DEFAULT_FULL_REDIS_URL = "redis://127.0.0.1:6379/0"
FULL_MODE_LIMIT = "1000000000"  # per minute: checked on every request, never reached


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
    # The same two, served by another checkout (``--baseline DIR``): before/after in one run.
    "neuroroute_base": Variant("neuroroute_base", "NeuroRoute minimal (baseline)",
                               ("flask", "gevent", "gunicorn")),
    "neuroroute_full_base": Variant("neuroroute_full_base", "NeuroRoute full (baseline)",
                                    ("flask", "gevent")),
}
BASELINE_VARIANTS = {"neuroroute_base": "neuroroute", "neuroroute_full_base": "neuroroute_full"}


def full_mode_urls(env: dict[str, str]) -> tuple[str, str]:
    """The (database URL, Redis URL) full mode uses: ``BENCH_*`` overrides or the local ones."""
    return (env.get("BENCH_DATABASE_URL") or DEFAULT_FULL_DATABASE_URL,
            env.get("BENCH_REDIS_URL") or DEFAULT_FULL_REDIS_URL)


def full_mode_status(env: dict[str, str]) -> str | None:
    """None if NeuroRoute's full mode can run, else why not (shown in the report).

    Full mode needs a reachable PostgreSQL and Redis (``BENCH_DATABASE_URL`` /
    ``BENCH_REDIS_URL``, default the local ones): checked here, never faked.
    """
    db_url, redis_url = full_mode_urls(env)
    try:
        import redis
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
    except ImportError as exc:
        return f"skipped: {exc}"
    url = make_url(db_url)
    if url.get_backend_name() != "postgresql":
        return ("skipped: full mode needs PostgreSQL, BENCH_DATABASE_URL is "
                f"{url.get_backend_name()}")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3}, poolclass=_null_pool())
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure is the reason shown in the report
        return f"skipped: PostgreSQL at {url.render_as_string(hide_password=True)} unreachable: " \
               f"{str(exc).splitlines()[0][:160]}"
    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001
        return f"skipped: Redis at {redis_url} unreachable: {str(exc).splitlines()[0][:160]}"
    return None


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def migrate(url: str, app_dir: Path) -> None:
    """Apply ``app_dir``'s migrations (a baseline checkout has its own head revision)."""
    code = f"from app.db.schema import upgrade; upgrade({url!r})"
    out = subprocess.run([PY, "-c", code], cwd=app_dir, capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise HarnessError(f"migrations in {app_dir} failed: {out.stderr.strip()[-500:]}")


def start_private_redis(logdir: Path, proc_cleanup: list[Callable[[], None]]) -> str | None:
    """A redis-server of the run's own on the load core, so its command statistics count one
    gateway's commands only; None when redis-server is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    proc = Proc(f"redis-{port}", [binary, "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no"],
                core=LOADGEN_CORE, log=logdir / f"redis-{port}.log")
    proc.wait_port(port)
    proc_cleanup.append(proc.stop)
    return f"redis://127.0.0.1:{port}/0"


def _full_mode_env(env: dict[str, str], proc_cleanup: list[Callable[[], None]],
                   app_dir: Path, logdir: Path) -> dict[str, str]:
    """A fresh PostgreSQL schema (migrated by ``app_dir``'s code) and a Redis for one
    full-mode server: a private redis-server unless ``BENCH_REDIS_URL`` names one.

    The schema is selected through ``options=-csearch_path=...`` in the URL, so the app needs
    no setting for it; cleanups to drop it (and the Redis keys) go to ``proc_cleanup``.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    db_url, redis_url = full_mode_urls(env)
    if not env.get("BENCH_REDIS_URL"):
        redis_url = start_private_redis(logdir, proc_cleanup) or redis_url
    tag = f"nrbench_{secrets.token_hex(4)}"
    admin_url = make_url(db_url)
    engine = create_engine(admin_url, poolclass=_null_pool())
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{tag}"'))

    def drop_schema() -> None:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE'))
        engine.dispose()

    def drop_redis_keys() -> None:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        keys = list(client.scan_iter(match=f"*{tag}*", count=1000))  # LIMITS:LIMITER/<tag>/...
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
        client.close()

    proc_cleanup.extend([drop_schema, drop_redis_keys])
    app_url = admin_url.update_query_dict({"options": f"-csearch_path={tag}"})
    url_str = app_url.render_as_string(hide_password=False)
    try:
        migrate(url_str, app_dir)
    except BaseException:
        drop_schema()
        raise
    return {
        "NEUROROUTE_DATABASE_URL": url_str,
        "NEUROROUTE_REDIS_URL": redis_url,
        "NEUROROUTE_REDIS_NAMESPACE": tag,
        # Per-key limits are checked in Redis on every request but never refuse.
        "NEUROROUTE_DEFAULT_RPM": FULL_MODE_LIMIT,
        "NEUROROUTE_DEFAULT_TPM": FULL_MODE_LIMIT,
    }


def create_client_key(port: int, master_key: str = MASTER_KEY) -> str:
    """A DB-backed member key created through the admin API (what full mode sends load with)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/keys", method="POST",
        data=json.dumps({"name": "bench", "role": "member"}).encode(),
        headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            key = json.loads(resp.read())["key"]
    except (OSError, KeyError, ValueError) as exc:
        raise HarnessError(f"could not create a client key via POST /admin/keys: {exc}") from exc
    if not isinstance(key, str) or not key.startswith("sk-"):
        raise HarnessError(f"POST /admin/keys returned no key: {key!r}")
    return key


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
    cleanups: list[Callable[[], None]] = []
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
    elif name in ("neuroroute", "neuroroute_full", *BASELINE_VARIANTS):
        kind = BASELINE_VARIANTS.get(name, name)
        # BENCH_NEUROROUTE_DIR / BENCH_BASELINE_DIR: another checkout of the app (e.g. a
        # `git worktree` of a base commit); Gunicorn puts its cwd first on sys.path.
        workdir = Path((env.get("BENCH_BASELINE_DIR") if name in BASELINE_VARIANTS
                        else env.get("BENCH_NEUROROUTE_DIR")) or ROOT)
        cfg = Path(tempfile.mkdtemp(prefix="bench-nr-")) / "neuroroute.yaml"
        cfg.write_text(
            f"models:\n  - name: {MODEL}\n    provider: openai\n    model: {MODEL}\n"
            f"    api_base: {upstream}\n"
        )
        base_env.update(
            NEUROROUTE_MASTER_KEY=MASTER_KEY,
            NEUROROUTE_CONFIG=str(cfg),
            NEUROROUTE_BIND=f"127.0.0.1:{port}",
            NEUROROUTE_WORKERS="1",
            NEUROROUTE_WORKER_CONNECTIONS=WORKER_CONNECTIONS,
        )
        if kind == "neuroroute_full":
            base_env.update(_full_mode_env(env, cleanups, workdir, logdir))
        else:
            # Minimal: the master key, its own SQLite file (migrated like `make run` does:
            # workers refuse an old schema) and no usage records written to it.
            base_env.update(NEUROROUTE_DATABASE_URL=f"sqlite:///{cfg.parent / 'neuroroute.db'}",
                            NEUROROUTE_USAGE_ENABLED="false")
            migrate(base_env["NEUROROUTE_DATABASE_URL"], workdir)
        cmd = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    else:
        raise HarnessError(f"unknown variant {name!r}")
    try:
        proc = Proc(name, cmd, core=VARIANT_CORE, log=log, env={**env, **base_env}, cwd=workdir)
    except BaseException:
        for cleanup in reversed(cleanups):
            cleanup()
        raise
    proc.on_stop.extend(cleanups)
    extra = {k: v for k, v in base_env.items() if k in ("NEUROROUTE_REDIS_URL",
                                                         "NEUROROUTE_DATABASE_URL")}
    try:
        proc.wait_port(port, timeout=30)
        if name in ("neuroroute_full", "neuroroute_full_base"):
            api_key = create_client_key(port)
    except BaseException:
        proc.stop()
        raise
    return Server(name, proc, port, api_key=api_key, extra=extra)
