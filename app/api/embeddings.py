"""``POST /v1/embeddings``: validate, call the pipeline as the embeddings surface, relay.

Keys, allowlists, RPM/TPM (charged by the estimated input tokens), budgets, the response
cache, routing with retries and fallbacks among the deployments that serve embeddings, and
the usage record (``api: embeddings``) are the chat pipeline's.
"""

from __future__ import annotations

from flask import Response

from app.api.bodies import validated_by
from app.api.chat import serve
from app.api.docs import EMBEDDINGS_EXAMPLE
from app.api.relayed_doc import relayed_doc
from app.api.spec import SECURED, Blueprint
from app.chat.relayed import EMBEDDINGS_SURFACE
from app.schemas.embeddings import EmbeddingListSchema, EmbeddingRequestSchema

bp = Blueprint("embeddings", __name__, errors=SECURED, secured=True,
               description="OpenAI-compatible embeddings, served by the models whose "
                           "deployments list `embeddings` in `endpoints:`.")

_validate = validated_by(EmbeddingRequestSchema())


@bp.post("/v1/embeddings")
@relayed_doc(bp, summary="Create embeddings (OpenAI-compatible)", family="embeddings",
             description="Fields the gateway does not know are passed to the upstream "
                         "untouched, and its answer is relayed as is: with `encoding_format: "
                         "base64` (what the openai SDK asks for) each vector is the "
                         "upstream's base64 of little-endian float32 values.",
             request=EmbeddingRequestSchema, answer=EmbeddingListSchema,
             examples={"hello": EMBEDDINGS_EXAMPLE})
def create_embeddings() -> Response:
    return serve(EMBEDDINGS_SURFACE, _validate)
