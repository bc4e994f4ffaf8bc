"""``GET /v1/models`` and ``GET /v1/models/<id>`` in OpenAI's list/object format."""

from __future__ import annotations

from typing import Any

from flask import g

from app.api.spec import SECURED, Blueprint, documented
from app.errors import ModelNotFoundError
from app.gateway import gateway
from app.routing.registry import ModelGroup
from app.schemas.config import ENDPOINT_FAMILIES
from app.schemas.models import ModelListSchema, ModelSchema

bp = Blueprint("models", __name__, errors=SECURED, secured=True,
               description="The models this key may use, in OpenAI's format.")


def model_object(group: ModelGroup, created: int) -> dict[str, Any]:
    """OpenAI's model object, plus ``neuroroute.endpoints``: the API families (``chat``,
    ``embeddings``, ``completions``) some deployment of the group serves."""
    return {"id": group.name, "object": "model", "created": created, "owned_by": group.owned_by,
            "neuroroute": {"endpoints": [f for f in ENDPOINT_FAMILIES if group.serves(f)]}}


def router_object(name: str, created: int) -> dict[str, Any]:
    """An auto router (e.g. ``auto``) is a model name clients can ask for, too (chat only)."""
    return {"id": name, "object": "model", "created": created, "owned_by": "neuroroute",
            "neuroroute": {"endpoints": ["chat"]}}


@bp.get("/v1/models")
@documented(bp.response(200, ModelListSchema))
def list_models() -> dict[str, Any]:
    """List the models this key may use"""
    gw = gateway()
    allowed = g.principal.allowed_models
    listing = gw.model_lists.get(allowed)
    if listing is None:
        created = int(gw.started_at)
        listing = {"object": "list",
                   "data": [model_object(group, created) for group in gw.registry.groups()
                            if g.principal.may_use(group.name)]
                   + [router_object(r.name, created) for r in gw.settings.routing.auto_routers
                      if g.principal.may_use(r.name)]}
        gw.model_lists.set(allowed, listing)
    return listing


@bp.get("/v1/models/<path:model_id>")
@documented(bp.response(200, ModelSchema),
            bp.errors(_404="Unknown model, or one the key may not use"))
def retrieve_model(model_id: str) -> dict[str, Any]:
    """Retrieve one model"""
    gw = gateway()
    group = gw.registry.get(model_id)
    if not g.principal.may_use(model_id):
        raise ModelNotFoundError(model_id)
    if group is not None:
        return model_object(group, int(gw.started_at))
    if gw.settings.routing.auto_router(model_id) is not None:
        return router_object(model_id, int(gw.started_at))
    raise ModelNotFoundError(model_id)
