"""The compose stack of ``deploy/docker-compose.yml``, brought up for real by ``make test-docker``.

One stack per test session, under a project name of its own (so it never meets another run's
containers or volumes), with nginx published on a free port of 127.0.0.1. The official images
are replaced by the local stand-ins of :mod:`tests.docker.base_images` through the compose
file's image variables; everything else is the shipped configuration.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from tests.procs import ROOT, free_port

COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
MASTER_KEY = "sk-docker-test-master-key"
DB_USER = DB_NAME = "neuroroute"
PROJECT_PREFIX = "nrtest"
# A run takes minutes; a test stack older than this was left by a run that was killed (its
# containers restart with the engine), and a run on this engine removes it.
STALE_AFTER_S = 3600


@functools.cache
def compose_command() -> list[str]:
    """``docker compose`` (v2) where the plugin exists, else Compose v1's ``docker-compose``."""
    if subprocess.run(["docker", "compose", "version"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed "
                       "(apt-get install docker-compose)")


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def stale_projects(now: float | None = None) -> set[str]:
    """Test stacks (by compose project) whose containers are all older than STALE_AFTER_S."""
    out = docker("ps", "-a", "-q", "--filter", "label=com.docker.compose.project")
    ids = out.split()
    if not ids:
        return set()
    newest: dict[str, float] = {}
    for item in json.loads(docker("inspect", *ids)):
        project = item["Config"]["Labels"].get("com.docker.compose.project", "")
        if re.fullmatch(rf"{PROJECT_PREFIX}[0-9a-f]{{8}}", project):
            created = datetime.fromisoformat(item["Created"][:19]).replace(tzinfo=UTC)
            newest[project] = max(newest.get(project, 0.0), created.timestamp())
    cutoff = (time.time() if now is None else now) - STALE_AFTER_S
    return {project for project, created in newest.items() if created < cutoff}


@dataclass
class Stack:
    images: Mapping[str, str]
    workdir: Path
    project: str = field(default_factory=lambda: f"{PROJECT_PREFIX}{secrets.token_hex(4)}")
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NEUROROUTE_MASTER_KEY": MASTER_KEY,
            "NEUROROUTE_HTTP_PORT": f"127.0.0.1:{self.port}",
            "NEUROROUTE_IMAGE": f"neuroroute-test/gateway:{self.project}",
            "NEUROROUTE_PYTHON_IMAGE": self.images["python"],
            "NEUROROUTE_POSTGRES_IMAGE": self.images["postgres"],
            "NEUROROUTE_REDIS_IMAGE": self.images["redis"],
            "NEUROROUTE_NGINX_IMAGE": self.images["nginx"],
            # One worker per replica: two replicas already share the 2 cores of CI.
            "NEUROROUTE_WORKERS": "1",
            # The classic builder (no buildx here); Compose v1 then builds through the API.
            "DOCKER_BUILDKIT": "0",
            "COMPOSE_DOCKER_CLI_BUILD": "0",
        }

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """Run a compose command for this project; its output goes to compose.log too."""
        cmd = [*compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)
        with (self.workdir / "compose.log").open("a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[-len(args):])} failed ({done.returncode}):\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
        return done.stdout

    def up(self) -> None:
        for project in stale_projects():
            Stack(self.images, self.workdir, project=project).down()
        self.compose("build", timeout=900)
        self.compose("up", "-d", timeout=300)
        self.wait_ready()

    def down(self) -> None:
        self.save_logs()
        # Bounded: nothing is in flight any more, a gateway that does not stop in 30 s is a bug
        # the logs show. The built gateway image is kept: its layers are the next run's cache.
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", timeout=180,
                     check=False)
        docker("image", "rm", self.env["NEUROROUTE_IMAGE"], check=False)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"{self.url}/health/ready", timeout=2)
                if resp.status_code == 200:
                    return
                last = f"{resp.status_code} {resp.text[:200]}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise RuntimeError(f"the stack did not get ready in {timeout:.0f} s ({last}); "
                           f"logs: {self.save_logs()}")

    def save_logs(self) -> Path:
        path = self.workdir / "services.log"
        path.write_text(self.compose("logs", "--no-color", timeout=60, check=False))
        return path

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers, running or not (one per replica)."""
        out = self.compose("ps", "-q", service)
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", container))
        return data[0]

    def exec(self, container: str, *cmd: str, timeout: float = 60) -> str:
        return docker("exec", container, *cmd, timeout=timeout)

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of a query run by psql inside the PostgreSQL container, as text."""
        out = self.exec(self.containers("postgres")[0], "psql", "-U", DB_USER, "-d", DB_NAME,
                        "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql)
        return [line.split("\t") for line in out.splitlines() if line]

    def log_lines(self, container: str) -> list[dict[str, Any]]:
        """The container's JSON log lines (the gateway logs JSON on stdout), oldest first."""
        done = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                              timeout=60, check=True)
        lines = []
        for raw in (done.stdout + done.stderr).splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines

    def answered_by(self, request_ids: Iterable[str]) -> dict[str, str]:
        """request id -> the gateway container whose access log has it."""
        wanted = set(request_ids)
        found: dict[str, str] = {}
        for container in self.containers("gateway"):
            for line in self.log_lines(container):
                rid = line.get("request_id")
                if line.get("logger") == "app.access" and rid in wanted:
                    found[rid] = container
        return found

    def wait_healthy(self, container: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.inspect(container)["State"].get("Health", {}).get("Status", "?")
            if status == "healthy":
                return
            time.sleep(0.5)
        raise RuntimeError(f"{container[:12]} is {status} after {timeout:.0f} s")
