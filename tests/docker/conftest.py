"""The compose stack for the container tests: built and started once, always torn down.

These tests need a Docker engine and take minutes, so ``make test`` does not collect them:
``make test-docker`` runs them (it sets NEUROROUTE_TEST_DOCKER=1). When asked for, a missing
engine is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.docker import base_images
from tests.docker.stack import MASTER_KEY, Stack

if os.environ.get("NEUROROUTE_TEST_DOCKER") != "1":
    collect_ignore_glob = ["test_*.py"]

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def _require_docker() -> None:
    try:
        subprocess.run(["docker", "info"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"no Docker engine answers `docker info` ({type(exc).__name__}); "
                    "start dockerd first (.ci/run does)", pytrace=False)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require_docker()
    workdir = tmp_path_factory.mktemp("stack")
    deployed = Stack(images=base_images.build_all(), workdir=workdir)
    try:
        deployed.up()
        yield deployed
    finally:
        deployed.down()
        print(f"\ncompose output and service logs: {workdir}")


@pytest.fixture(scope="session")
def client_key(stack: Stack) -> dict[str, str]:
    """A client key created through the admin API (``id``, ``key``)."""
    resp = requests.post(f"{stack.url}/admin/keys", headers=AUTH, timeout=10,
                         json={"name": "docker-smoke"})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["key"].startswith("sk-nr-")
    return {"id": created["id"], "key": created["key"]}
