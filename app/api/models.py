"""``GET /v1/models`` and ``GET /v1/models/<id>`` in OpenAI's list/object format."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from app.errors import ModelNotFoundError
from app.extensions import gateway
from app.routing.registry import ModelGroup

bp = Blueprint("models", __name__)


def model_object(group: ModelGroup, created: int) -> dict[str, Any]:
    return {"id": group.name, "object": "model", "created": created, "owned_by": group.owned_by}


@bp.get("/v1/models")
def list_models() -> dict[str, Any]:
    gw = gateway()
    allowed = g.principal.allowed_models
    listing = gw.model_lists.get(allowed)
    if listing is None:
        created = int(gw.started_at)
        listing = {"object": "list",
                   "data": [model_object(group, created) for group in gw.registry.groups()
                            if g.principal.may_use(group.name)]}
        gw.model_lists.set(allowed, listing)
    return listing


@bp.get("/v1/models/<path:model_id>")
def retrieve_model(model_id: str) -> dict[str, Any]:
    gw = gateway()
    group = gw.registry.get(model_id)
    if group is None or not g.principal.may_use(model_id):
        raise ModelNotFoundError(model_id)
    return model_object(group, int(gw.started_at))
