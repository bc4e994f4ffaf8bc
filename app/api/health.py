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
                                    "models": len(gw.registry.names())}}}
    ok = all(c["status"] == "ok" for c in checks.values())
    return {"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503
