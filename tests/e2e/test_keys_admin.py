"""End to end on SQLite: 2 Gunicorn gevent workers, admin API, client keys, the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import scenarios
from tests.procs import Proc, running, start_gateway

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
