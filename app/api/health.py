"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from flask import Response, request

from app.api.limits import auth_failure_limit
from app.api.spec import Blueprint, documented
from app.db.engine import Database
from app.db.schema import SchemaNotCurrentError, require_head
from app.errors import AuthenticationError, PermissionDeniedError
from app.gateway import gateway
from app.metrics import render_metrics, set_state_gauges
from app.schemas.ops import LiveSchema, ReadySchema

bp = Blueprint("health", __name__,
               description="Probes for load balancers and Prometheus metrics (no key).")


@bp.get("/health/live")
@documented(bp.response(200, LiveSchema))
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
@documented(bp.response(200, ReadySchema, description="Ready, or degraded but serving"),
            bp.alt_response(503, schema=ReadySchema, description="Not ready"))
def ready() -> tuple[dict[str, Any], int]:
    """Configuration is loaded and every dependency the gateway needs is reachable."""
    gw = gateway()
    checks: dict[str, dict[str, Any]] = {
        "config": {"status": "ok",
                   "detail": {"deployments": len(gw.settings.deployments),
                              "stored_deployments": len(gw.db_deployments),
                              "models": len(gw.registry.names())}},
        "database": database_check(gw.db),
        "routing": gw.dispatcher.health(),
    }
    if gw.settings.redis_url:
        # Redis trouble degrades (limits per process, no shared cache) but never stops serving.
        healthy = gw.admission.backend == "redis" and auth_failure_limit().storage_healthy
        checks["rate_limit_storage"] = {
            "status": "ok" if healthy else "degraded",
            "detail": {"backend": "redis" if healthy else "memory (fallback)"}}
        checks["response_cache"] = {"status": "ok" if gw.cache.healthy else "degraded",
                                    "detail": {"backend": "redis"}}
    if any(c["status"] == "error" for c in checks.values()):
        return {"status": "not_ready", "checks": checks}, 503
    # A database or Redis outage, or upstreams cooling down, degrade but do not stop the
    # gateway: cached keys, the loaded deployments and in-memory limits keep serving, and
    # taking the instance out of the load balancer would not bring an upstream back.
    degraded = any(c["status"] != "ok" for c in checks.values())
    return {"status": "degraded" if degraded else "ready", "checks": checks}, 200


@bp.get("/metrics")
@documented(bp.response(200, {"type": "string"}, content_type="text/plain",
                        description="Prometheus text format"),
            bp.errors(_401="Wrong metrics token (NEUROROUTE_METRICS_TOKEN)",
                      _403="Not a loopback client and no metrics token configured"))
def metrics() -> Response:
    """Prometheus metrics of all workers.

    With ``NEUROROUTE_METRICS_TOKEN`` set, scrapers send it as a bearer token; without it only
    loopback clients are served (behind a proxy with trusted hops, the real client address
    counts, so the internet cannot scrape through nginx).
    """
    settings = gateway().settings
    if settings.metrics_token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
            raise AuthenticationError("A valid metrics token is required.",
                                      code="invalid_metrics_token")
    elif not ipaddress.ip_address(request.remote_addr or "0.0.0.0").is_loopback:
        raise PermissionDeniedError("Metrics are served to loopback clients only; set "
                                    "NEUROROUTE_METRICS_TOKEN to scrape remotely.")
    gw = gateway()
    ids = [p.deployment.id for p in gw.registry.providers()]
    try:
        views = gw.dispatcher.breaker.view(ids)
        cooldown = {dep_id: view.state != "closed" for dep_id, view in views.items()}
    except Exception:  # noqa: BLE001 - the scrape must not fail on a breaker store hiccup
        cooldown = {}
    dependencies = {"database": database_check(gw.db)["status"] == "ok"}
    if settings.redis_url:
        dependencies["redis"] = (gw.admission.backend == "redis"
                                 and auth_failure_limit().storage_healthy and gw.cache.healthy)
    set_state_gauges(cooldown=cooldown, dependencies=dependencies)
    gw.recorder.flush()  # this worker's batched updates, before the files are read
    return Response(render_metrics(settings.metrics_multiproc_dir),
                    mimetype="text/plain; version=0.0.4")
