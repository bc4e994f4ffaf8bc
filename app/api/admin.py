"""``/admin/*``: management endpoints for admin keys (the master key or admin-role keys)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from app.auth.service import require_admin
from app.extensions import gateway

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _admins_only() -> None:
    require_admin(g.principal)


@bp.get("/config")
def effective_config() -> dict[str, Any]:
    """The effective configuration, with every secret redacted."""
    return gateway().settings.public_dict()


@bp.get("/routing")
def routing_status() -> dict[str, Any]:
    """Model groups, strategies, fallbacks and each deployment's health (no upstream calls)."""
    return gateway().dispatcher.report()
