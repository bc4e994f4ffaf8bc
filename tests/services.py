"""Real services for integration tests: required in CI, a clear skip elsewhere."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.procs import Proc, free_port

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def require_service(name: str, probe: Callable[[], None]) -> None:
    """Run ``probe``; if the service is unreachable fail under CI=true, else skip."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - any failure to reach it means "not available"
        first_line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        message = (f"{name} is not reachable ({type(exc).__name__}: {first_line}). "
                   "Integration tests need it; start it or set NEUROROUTE_TEST_POSTGRES_URL / "
                   "NEUROROUTE_TEST_REDIS_URL.")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)


def require(service: str, host: str, port: int) -> None:
    """Fail (CI=true) or skip (locally) unless something accepts connections at host:port."""
    require_service(service, lambda: socket.create_connection((host, port), timeout=1).close())


def require_binary(name: str, *elsewhere: str) -> str:
    """The path of a Debian-packaged program the tests drive (``.ci/run`` installs it): a
    failure under CI=true when it is missing, a skip with the reason otherwise."""
    found = shutil.which(name) or next((p for p in elsewhere if Path(p).exists()), None)
    if found is None:
        message = f"{name} is not installed (apt-get install {name}); .ci/run installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def redis_url(db: int = 0) -> str:
    require("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def unique_namespace() -> str:
    """A Redis key prefix of our own, so parallel runs never share counters or entries."""
    return f"nrtest-{uuid.uuid4().hex[:12]}"


def start_private_redis(tmp: Path, port: int | None = None) -> Proc:
    """A redis-server of this test's own (to stop and restart it without touching others)."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = port or free_port()
    log = tmp / f"redis-{port}.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                 stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Proc(popen, f"redis://127.0.0.1:{port}/0", log)
        except OSError:
            time.sleep(0.05)
    popen.kill()
    raise RuntimeError(f"private redis did not start: {log.read_text()}")
