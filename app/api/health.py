"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.extensions import gateway

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live() -> dict[str, Any]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@bp.get("/health/ready")
def ready() -> tuple[dict[str, Any], int]:
    """Configuration is loaded and every dependency the gateway needs is reachable."""
    gw = gateway()
    checks = {"config": {"status": "ok",
                         "detail": {"deployments": len(gw.settings.deployments),
                                    "models": len(gw.registry.names())}},
              "routing": gw.dispatcher.health()}
    statuses = {c["status"] for c in checks.values()}
    if statuses <= {"ok"}:
        return {"status": "ready", "checks": checks}, 200
    # Cooling-down upstreams or a lost Redis degrade the service but do not make this
    # instance unfit: taking it out of the load balancer would not bring an upstream back.
    if statuses <= {"ok", "degraded"}:
        return {"status": "degraded", "checks": checks}, 200
    return {"status": "not_ready", "checks": checks}, 503
