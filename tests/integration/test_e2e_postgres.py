"""End to end on PostgreSQL + Redis: 2 Gunicorn gevent workers (psycogreen-patched).

Polling is set to 30 s here, so changes reaching both workers in about a second prove the
Redis ping works inside gevent workers (the SQLite end-to-end tests cover polling).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from app.db.schema import upgrade
from tests.e2e import scenarios
from tests.procs import running, start_gateway, start_mock_upstream

pytestmark = pytest.mark.e2e
WORKERS = 2
REDIS_BOUND = 1.0  # far below the 30 s poll


def test_keys_and_deployments_across_workers_on_postgres(pg_url: str, redis_url: str,
                                                         tmp_path: Path) -> None:
    upgrade(pg_url)  # as `make migrate` would; the workers check the schema is at head
    with running(start_mock_upstream(tmp_path)) as upstream:
        models = [{"name": "mock-fast", "provider": "mock", "model": "mock-fast"},
                  {"name": "up", "provider": "openai", "model": "upstream-model",
                   "api_base": f"{upstream.url}/v1"}]
        env = {"NEUROROUTE_DATABASE_URL": pg_url,
               "NEUROROUTE_REDIS_URL": redis_url, "NEUROROUTE_SYNC_INTERVAL": "30",
               "NEUROROUTE_LAST_USED_FLUSH_INTERVAL": "1", "NEUROROUTE_DB_POOL_SIZE": "4"}
        with running(start_gateway(tmp_path, models, workers=WORKERS, env=env,
                                   migrate=False)) as gateway:
            # gunicorn.conf.py's post_fork installed psycogreen in the workers.
            ready = requests.get(f"{gateway.url}/health/ready", timeout=10).json()
            assert ready["checks"]["database"]["detail"] == {"backend": "postgresql",
                                                             "cooperative": True}
            # Listeners start with a worker's first request; the scenario's first requests
            # reach both workers before anything changes.
            scenarios.key_lifecycle(gateway, WORKERS, bound=REDIS_BOUND)
            scenarios.member_is_refused_on_admin(gateway)
            scenarios.allowlist(gateway, allowed="mock-fast", other="up")
            scenarios.deployment_without_restart(gateway, WORKERS, upstream.url,
                                                 bound=REDIS_BOUND)
            scenarios.last_used_is_recorded(gateway)
