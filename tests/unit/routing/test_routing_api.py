"""Routing through the app: config validation, headers, /admin/routing, readiness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from app import create_app
from app.settings import ConfigError, load_settings
from tests.conftest import AUTH, MASTER_KEY, chat_body

MODELS: list[dict[str, Any]] = [
    {"name": "main", "provider": "mock", "model": "m1", "id": "main-a"},
    {"name": "main", "provider": "mock", "model": "m2", "id": "main-b", "rpm": 100},
    {"name": "backup", "provider": "mock", "model": "m3", "tier": "small",
     "input_cost_per_mtok": 0.1, "output_cost_per_mtok": 0.4},
    {"name": "big", "provider": "mock", "model": "m4", "tier": "large",
     "capabilities": ["vision", "tools", "json"], "input_cost_per_mtok": 3,
     "output_cost_per_mtok": 15, "max_input_tokens": 200_000},
]
ROUTING: dict[str, Any] = {
    "router_settings": {"strategy": "round-robin", "retries": 1,
                        "cooldown": {"failures": 2, "cooldown_s": 5}},
    "groups": {"main": {"strategy": "least-in-flight", "fallbacks": ["backup"]}},
    "auto_routers": [{"name": "auto"}],
}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def routed_app(tmp_path: Path, database_url: str) -> Flask:
    path = write(tmp_path, {"models": MODELS, **ROUTING})
    app = create_app(load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                                    "NEUROROUTE_CONFIG": str(path),
                                    "NEUROROUTE_DATABASE_URL": database_url}))
    app.config["TESTING"] = True
    return app


def test_routing_config_is_loaded(routed_app: Flask) -> None:
    settings = routed_app.extensions["neuroroute"].settings
    routing = settings.routing
    assert routing.strategy == "round-robin" and routing.retry.retries == 1
    assert routing.cooldown.failures == 2 and routing.cooldown.window_s == 60
    assert routing.group("main").fallbacks == ("backup",)
    assert routing.group("backup").strategy is None
    assert routing.auto_router("auto") is not None
    big = next(d for d in settings.deployments if d.name == "big")
    assert big.capabilities == {"vision", "tools", "json"} and big.max_input_tokens == 200_000


@pytest.mark.parametrize(("extra", "expected"), [
    ({"groups": {"nope": {}}}, "groups.nope: no model has this name"),
    ({"groups": {"main": {"fallbacks": ["ghost"]}}}, "groups.main.fallbacks: 'ghost'"),
    ({"groups": {"main": {"fallbacks": ["main"]}}}, "groups.main.fallbacks: 'main'"),
    ({"groups": {"main": {"strategy": "fastest"}}}, "groups.main.strategy: Must be one of"),
    ({"router_settings": {"retries": 99}}, "router_settings.retries"),
    ({"router_settings": {"cooldown": {"failures": 0}}}, "router_settings.cooldown.failures"),
    ({"auto_routers": [{"name": "main"}]}, "auto_routers[0].name: 'main' is already"),
    ({"auto_routers": [{"name": "a", "rules": [{"tier": "huge", "when": {"code": True}}]}]},
     "auto_routers[0].rules"),
    ({"auto_routers": [{"name": "a", "rules": [{"tier": "small", "when": {"c0de": True}}]}]},
     "c0de: Unknown field"),
])
def test_routing_config_errors_name_the_field(tmp_path: Path, extra: dict[str, Any],
                                              expected: str) -> None:
    path = write(tmp_path, {"models": MODELS, **extra})
    with pytest.raises(ConfigError) as info:
        load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY, "NEUROROUTE_CONFIG": str(path)})
    assert expected in str(info.value)


def test_model_capabilities_are_validated(tmp_path: Path) -> None:
    models = [{"name": "x", "provider": "mock", "model": "m", "capabilities": ["telepathy"]}]
    with pytest.raises(ConfigError, match=r"models\[0\].capabilities"):
        load_settings({"NEUROROUTE_MASTER_KEY": MASTER_KEY,
                       "NEUROROUTE_CONFIG": str(write(tmp_path, {"models": models}))})


def test_chat_response_names_deployment_attempts_and_route(routed_app: Flask) -> None:
    client = routed_app.test_client()
    resp = client.post("/v1/chat/completions", json=chat_body("main"), headers=AUTH)
    assert resp.status_code == 200
    assert resp.headers["x-neuroroute-deployment"] in ("main-a", "main-b")
    assert resp.headers["x-neuroroute-attempts"] == "1"
    assert resp.headers["x-neuroroute-route"] == "model=main"
    auto = client.post("/v1/chat/completions", headers=AUTH, json=chat_body(
        "auto", messages=[{"role": "user", "content": "Prove that sqrt(2) is irrational."}]))
    assert auto.status_code == 200 and auto.headers["x-neuroroute-deployment"] == "big#0"
    assert auto.headers["x-neuroroute-route"].startswith("auto; tier=large; reason=")


def test_gateway_only_body_field_is_validated(routed_app: Flask) -> None:
    client = routed_app.test_client()
    ok = client.post("/v1/chat/completions", headers=AUTH,
                     json=chat_body("main", neuroroute={"fallbacks": False}))
    assert ok.status_code == 200
    bad = client.post("/v1/chat/completions", headers=AUTH,
                      json=chat_body("main", neuroroute={"fallbacks": "nah"}))
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "neuroroute"


def test_admin_routing_reports_groups_and_health(routed_app: Flask) -> None:
    client = routed_app.test_client()
    assert client.get("/admin/routing").status_code == 401
    client.post("/v1/chat/completions", json=chat_body("backup"), headers=AUTH)
    report = client.get("/admin/routing", headers=AUTH).get_json()
    assert report["breaker_backend"] == "memory" and report["cooldown"]["failures"] == 2
    groups = {g["name"]: g for g in report["groups"]}
    assert groups["main"]["strategy"] == "least-in-flight"
    assert groups["main"]["fallbacks"] == ["backup"]
    assert groups["backup"]["strategy"] == "round-robin"
    backup = groups["backup"]["deployments"][0]
    assert backup["state"] == "closed" and backup["successes"] == 1
    assert backup["requests_last_minute"] == 1 and backup["latency_ewma_ms"] is not None
    assert report["auto_routers"] == [{"name": "auto", "tiers": ["small", "medium", "large"],
                                       "default_tier": "small"}]


def test_readiness_lists_cooling_down_deployments_but_stays_ready(routed_app: Flask) -> None:
    """A group whose only deployment cools down is reported, but the instance stays ready: a
    load balancer draining every instance for one upstream would not bring it back."""
    client = routed_app.test_client()
    ready = client.get("/health/ready").get_json()
    assert ready["status"] == "ready" and ready["checks"]["routing"]["status"] == "ok"
    breaker = routed_app.extensions["neuroroute"].dispatcher.breaker
    for _ in range(2):
        breaker.failure("backup#0")
    resp = client.get("/health/ready")
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ready"
    assert body["checks"]["routing"]["status"] == "ok"
    detail = body["checks"]["routing"]["detail"]
    assert detail["cooling_down"] == ["backup#0"]
    assert detail["groups_without_healthy_deployment"] == ["backup"]


def test_auto_routers_are_listed_as_models(routed_app: Flask) -> None:
    client = routed_app.test_client()
    ids = [m["id"] for m in client.get("/v1/models", headers=AUTH).get_json()["data"]]
    assert ids == ["main", "backup", "big", "auto"]
    assert client.get("/v1/models/auto", headers=AUTH).get_json()["owned_by"] == "neuroroute"
    assert client.get("/v1/models/autox", headers=AUTH).status_code == 404


def test_swapping_the_registry_at_runtime(routed_app: Flask) -> None:
    from app.providers.base import build_provider
    from app.routing.registry import ModelRegistry
    from app.settings import Deployment, MockParams

    gw = routed_app.extensions["neuroroute"]
    client = routed_app.test_client()
    client.post("/v1/chat/completions", json=chat_body("backup"), headers=AUTH)
    added = Deployment(id="fresh", name="fresh", provider="mock", model="f", mock=MockParams())
    providers = [*gw.registry.providers(), build_provider(added, settings=gw.settings)]
    gw.swap_registry(ModelRegistry(providers))
    resp = client.post("/v1/chat/completions", json=chat_body("fresh"), headers=AUTH)
    assert resp.status_code == 200 and resp.headers["x-neuroroute-deployment"] == "fresh"
    report = client.get("/admin/routing", headers=AUTH).get_json()
    backup = next(g for g in report["groups"] if g["name"] == "backup")
    assert backup["deployments"][0]["successes"] == 1  # state survived the swap
