"""Start and stop real processes on 127.0.0.1 for end-to-end tests: Gunicorn and the mock upstream.

Every process is started in its own session and stopped by PID (its process group) at
teardown, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = "sk-e2e-master-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal the process group, wait, and kill it if it does not exit in time."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return int(self.popen.returncode)


def _wait_http(proc: Proc, path: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"process exited with {proc.popen.returncode}:\n{proc.output()}")
        try:
            if requests.get(proc.url + path, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"{proc.url}{path} not up after {timeout}s:\n{proc.output()}")


def _spawn(args: list[str], env: Mapping[str, str], log: Path, url: str) -> Proc:
    fh = log.open("wb")
    popen = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=fh,
                             stderr=subprocess.STDOUT, start_new_session=True)
    fh.close()
    return Proc(popen, url, log)


def start_mock_upstream(tmp: Path, **env: str) -> Proc:
    port = free_port()
    proc = _spawn([sys.executable, str(ROOT / "bench" / "mock_upstream.py"), "--port", str(port)],
                  env, tmp / f"mock-{port}.log", f"http://127.0.0.1:{port}")
    _wait_http(proc, "/_stats")
    return proc


def start_gateway(tmp: Path, models: list[dict[str, Any]], *, workers: int = 1,
                  env: Mapping[str, str] | None = None, migrate: bool = True,
                  wait: bool = True, config_extra: Mapping[str, Any] | None = None) -> Proc:
    """Start Gunicorn on a free port. Without NEUROROUTE_DATABASE_URL in ``env`` the gateway
    gets its own SQLite file in ``tmp``; ``migrate`` applies the migrations first (as
    ``make run`` does); ``config_extra`` adds top-level YAML sections (routing...)."""
    from app.db.schema import upgrade

    port = free_port()
    config = tmp / f"gateway-{port}.yaml"
    config.write_text(yaml.safe_dump({"models": models, **(config_extra or {})}))
    full_env = {"NEUROROUTE_MASTER_KEY": MASTER_KEY, "NEUROROUTE_CONFIG": str(config),
                "PORT": str(port), "NEUROROUTE_WORKERS": str(workers),
                "NEUROROUTE_GRACEFUL_TIMEOUT": "10",
                "NEUROROUTE_DATABASE_URL": f"sqlite:///{tmp / f'gateway-{port}.db'}",
                **(env or {})}
    if migrate:
        upgrade(full_env["NEUROROUTE_DATABASE_URL"])
    proc = _spawn([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                  full_env, tmp / f"gateway-{port}.log", f"http://127.0.0.1:{port}")
    if wait:
        _wait_http(proc, "/health/live")
    return proc


def sdk_client(gateway: Proc, key: str = MASTER_KEY) -> openai.OpenAI:
    """The official SDK pointed at the gateway (use it as a context manager: it pools)."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=20)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def start_tcp_proxy(tmp: Path, target: str, port: int | None = None) -> Proc:
    """tests/tcp_proxy.py forwarding a free (or given) local port to ``target``."""
    port = port or free_port()
    proc = _spawn([sys.executable, str(ROOT / "tests" / "tcp_proxy.py"), "--port", str(port),
                   "--target", target], {}, tmp / f"proxy-{port}.log", f"127.0.0.1:{port}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"tcp proxy did not start: {proc.output()}")
