"""End to end on SQLite: 2 Gunicorn gevent workers, admin API, client keys, the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e import scenarios
from tests.procs import MASTER_KEY, Proc, running, start_gateway

pytestmark = pytest.mark.e2e
WORKERS = 2


def models(upstream: Proc) -> list[dict[str, object]]:
    return [{"name": "mock-fast", "provider": "mock", "model": "mock-fast"},
            {"name": "up", "provider": "openai", "model": "upstream-model",
             "api_base": f"{upstream.url}/v1"}]


@pytest.fixture(scope="module")
def gateway(upstream: Proc, e2e_tmp: Path) -> Iterator[Proc]:
    env = {"NEUROROUTE_SYNC_INTERVAL": str(scenarios.SYNC_INTERVAL),
           "NEUROROUTE_LAST_USED_FLUSH_INTERVAL": "1"}
    with running(start_gateway(e2e_tmp, models(upstream), workers=WORKERS, env=env)) as proc:
        yield proc


def test_key_created_used_revoked_on_every_worker(gateway: Proc) -> None:
    scenarios.key_lifecycle(gateway, WORKERS)


def test_member_key_is_refused_on_admin(gateway: Proc) -> None:
    scenarios.member_is_refused_on_admin(gateway)


def test_allowlist_hides_and_refuses_other_models(gateway: Proc) -> None:
    scenarios.allowlist(gateway, allowed="mock-fast", other="up")


def test_deployment_created_via_admin_reaches_every_worker(gateway: Proc,
                                                           upstream: Proc) -> None:
    scenarios.deployment_without_restart(gateway, WORKERS, upstream.url)


def test_last_used_is_recorded(gateway: Proc) -> None:
    scenarios.last_used_is_recorded(gateway)


def test_worker_refuses_to_boot_on_an_unmigrated_database(upstream: Proc,
                                                          tmp_path: Path) -> None:
    proc = start_gateway(tmp_path, models(upstream), migrate=False, wait=False)
    with running(proc):
        assert proc.popen.wait(30) == 3  # Gunicorn's "worker failed to boot"
    out = proc.output()
    assert "refusing to start this worker" in out and "make migrate" in out


def test_worker_starts_degraded_when_the_database_is_unreachable(upstream: Proc,
                                                                tmp_path: Path) -> None:
    """A respawn during a database outage must not halt the server; the master key works."""
    unreachable = f"sqlite:///{tmp_path}"  # a directory: every connection fails
    proc = start_gateway(tmp_path, models(upstream), migrate=False,
                         env={"NEUROROUTE_DATABASE_URL": unreachable})
    with running(proc):
        resp = requests.get(f"{proc.url}/v1/models", timeout=10,
                            headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert resp.status_code == 200
        ready = requests.get(f"{proc.url}/health/ready", timeout=10).json()
        assert ready["status"] == "degraded"
    assert "starting degraded" in proc.output()
