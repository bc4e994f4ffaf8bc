"""Key and deployment scenarios against a running multi-worker gateway (any database).

Every request opens a new connection, so the kernel spreads them over the workers; the
``X-NeuroRoute-Worker`` header says which worker (pid) answered.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

from tests.procs import MASTER_KEY, Proc, sdk_client

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
# Gateways in these tests run with NEUROROUTE_SYNC_INTERVAL=1: a change must reach every
# worker within that plus the time of one query and one request.
SYNC_INTERVAL = 1.0
BOUND = SYNC_INTERVAL + 0.5


def admin(gateway: Proc, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    resp = requests.request(method, gateway.url + path, headers=MASTER, timeout=10, **kwargs)
    assert resp.status_code == expect, resp.text
    return resp.json() if resp.content else None


def call(gateway: Proc, key: str, path: str = "/v1/models",
         body: dict[str, Any] | None = None) -> tuple[str, int, dict[str, Any]]:
    """(worker pid, status, json) of one request on a fresh connection."""
    headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
    if body is None:
        resp = requests.get(gateway.url + path, headers=headers, timeout=10)
    else:
        resp = requests.post(gateway.url + path, headers=headers, json=body, timeout=10)
    return resp.headers["X-NeuroRoute-Worker"], resp.status_code, resp.json()


def burst(gateway: Proc, key: str, path: str = "/v1/models",
          body: dict[str, Any] | None = None, n: int = 16) -> list[tuple[str, int, Any]]:
    """``n`` concurrent requests: the workers race to accept them, so all of them answer
    some (sequential requests may all be taken by whichever worker wakes first)."""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(gateway, key, path, body), range(n)))


def answers_from_every_worker(gateway: Proc, workers: int, key: str, *,
                              path: str = "/v1/models", body: dict[str, Any] | None = None,
                              max_bursts: int = 30) -> list[tuple[str, int, Any]]:
    """Bursts of requests until every worker has answered at least once."""
    results: list[tuple[str, int, Any]] = []
    for _ in range(max_bursts):
        results += burst(gateway, key, path, body)
        if len({pid for pid, _, _ in results}) >= workers:
            return results
    raise AssertionError(f"only workers {sorted({r[0] for r in results})} answered")


def until_every_worker(gateway: Proc, workers: int, key: str, expect: int, *,
                       timeout: float, path: str = "/v1/models",
                       body: dict[str, Any] | None = None) -> float:
    """Seconds until each of ``workers`` workers answers ``expect``; fails after ``timeout``.

    A worker counts as switched once it answered ``expect``: the sync never goes back."""
    start = time.monotonic()
    switched: dict[str, bool] = defaultdict(bool)
    while time.monotonic() - start < timeout:
        for pid, status, _ in burst(gateway, key, path, body, n=8):
            switched[pid] = switched[pid] or status == expect
        if len(switched) >= workers and all(switched.values()):
            return time.monotonic() - start
    raise AssertionError(f"not every worker answered {expect} within {timeout}s: "
                         f"{dict(switched)}")


def key_lifecycle(gateway: Proc, workers: int, bound: float = BOUND) -> None:
    created = admin(gateway, "POST", "/admin/keys", 201, json={"name": "e2e"})
    key = created["key"]
    with sdk_client(gateway, key) as sdk:
        assert "mock-fast" in [m.id for m in sdk.models.list()]
        reply = sdk.chat.completions.create(model="mock-fast",
                                            messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
    # Every worker accepts (and caches) the key before it is revoked.
    assert {status for _, status, _ in answers_from_every_worker(gateway, workers, key)} \
        == {200}

    admin(gateway, "POST", f"/admin/keys/{created['id']}/revoke", 200)
    waited = until_every_worker(gateway, workers, key, 401, timeout=bound + 3)
    assert waited <= bound, f"revocation took {waited:.2f}s to reach every worker"
    # And it stays refused everywhere, with the reason.
    results = answers_from_every_worker(gateway, workers, key)
    assert {(status, body["error"]["code"]) for _, status, body in results} == {
        (401, "api_key_revoked")}
    with sdk_client(gateway, key) as sdk, pytest.raises(openai.AuthenticationError) as info:
        sdk.models.list()
    assert info.value.code == "api_key_revoked"


def member_is_refused_on_admin(gateway: Proc) -> None:
    member = admin(gateway, "POST", "/admin/keys", 201, json={"name": "m"})["key"]
    for _ in range(10):
        resp = requests.get(f"{gateway.url}/admin/keys", timeout=10,
                            headers={"Authorization": f"Bearer {member}",
                                     "Connection": "close"})
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "insufficient_permissions"


def allowlist(gateway: Proc, allowed: str, other: str) -> None:
    key = admin(gateway, "POST", "/admin/keys", 201,
                json={"name": "narrow", "allowed_models": [allowed]})["key"]
    with sdk_client(gateway, key) as sdk:
        for _ in range(10):
            assert [m.id for m in sdk.models.list()] == [allowed]
        with pytest.raises(openai.NotFoundError) as info:
            sdk.chat.completions.create(model=other,
                                        messages=[{"role": "user", "content": "x"}])
        assert info.value.code == "model_not_found"
        assert sdk.chat.completions.create(
            model=allowed, messages=[{"role": "user", "content": "x"}]).choices


def deployment_without_restart(gateway: Proc, workers: int, upstream_url: str,
                               bound: float = BOUND) -> None:
    body = {"model": "added-later", "messages": [{"role": "user", "content": "x"}]}
    _, status, _ = call(gateway, MASTER_KEY, "/v1/chat/completions", body)
    assert status == 404
    admin(gateway, "POST", "/admin/deployments", 201, json={
        "id": "added-later-1", "name": "added-later", "provider": "openai",
        "model": "upstream-model", "api_base": f"{upstream_url}/v1",
        "api_key": "sk-upstream-added"})
    waited = until_every_worker(gateway, workers, MASTER_KEY, 200, timeout=bound + 3,
                                path="/v1/chat/completions", body=body)
    assert waited <= bound, f"the deployment took {waited:.2f}s to reach every worker"
    with sdk_client(gateway, MASTER_KEY) as sdk:
        reply = sdk.chat.completions.with_raw_response.create(**body)
    assert reply.headers["x-neuroroute-deployment"] == "added-later-1"
    listed = admin(gateway, "GET", "/admin/deployments?name=added-later", 200)
    assert listed["data"][0]["api_key"] == "<redacted>"
    assert "sk-upstream-added" not in str(listed)


def last_used_is_recorded(gateway: Proc) -> None:
    created = admin(gateway, "POST", "/admin/keys", 201, json={"name": "used"})
    call(gateway, created["key"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        call(gateway, created["key"])  # requests drive each worker's batched flush
        fetched = admin(gateway, "GET", f"/admin/keys/{created['id']}", 200)
        if fetched["last_used_at"]:
            return
        time.sleep(0.2)
    raise AssertionError("last_used_at was never written")
