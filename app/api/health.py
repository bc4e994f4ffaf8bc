"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from app.db.engine import Database
from app.db.schema import SchemaNotCurrentError, require_head
from app.extensions import gateway

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live() -> dict[str, Any]:
    """The process is up and serving requests."""
    return {"status": "ok"}


def database_check(db: Database) -> dict[str, Any]:
    """One connection to the database: reachable and at the schema this release needs."""
    try:
        require_head(db.engine)
    except SchemaNotCurrentError as exc:
        return {"status": "degraded", "detail": {"error": str(exc)}}
    detail: dict[str, Any] = {"backend": db.engine.dialect.name}
    dbapi = db.engine.dialect.dbapi
    if db.engine.dialect.driver == "psycopg2" and dbapi is not None:
        # True when psycogreen's wait callback is installed: queries yield to the gevent hub.
        detail["cooperative"] = dbapi.extensions.get_wait_callback() is not None
    return {"status": "ok", "detail": detail}


@bp.get("/health/ready")
def ready() -> tuple[dict[str, Any], int]:
    """Configuration is loaded and every dependency the gateway needs is reachable."""
    gw = gateway()
    checks: dict[str, dict[str, Any]] = {
        "config": {"status": "ok",
                   "detail": {"deployments": len(gw.settings.deployments),
                              "stored_deployments": len(gw.db_deployments),
                              "models": len(gw.registry.names())}},
        "database": database_check(gw.db),
    }
    if any(c["status"] == "error" for c in checks.values()):
        return {"status": "not_ready", "checks": checks}, 503
    # A database outage degrades but does not stop the gateway: cached keys and the loaded
    # deployments keep serving, so the instance stays in the load balancer.
    degraded = any(c["status"] != "ok" for c in checks.values())
    return {"status": "degraded" if degraded else "ready", "checks": checks}, 200
