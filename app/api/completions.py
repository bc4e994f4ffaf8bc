"""``POST /v1/completions`` (legacy text completions): validate, call the pipeline as the
completions surface, relay the answer or its stream as is.

The chat pipeline's keys, limits (estimated prompt tokens plus ``max_tokens``), budgets,
cache (non-stream answers), routing among the deployments that serve completions, and usage
(``api: completions``; the gateway asks a stream for its usage and strips that chunk when
the client did not ask for it).
"""

from __future__ import annotations

from flask import Response

from app.api.bodies import validated_by
from app.api.chat import serve
from app.api.docs import COMPLETIONS_EXAMPLE, COMPLETIONS_STREAM_EXAMPLE
from app.api.relayed_doc import relayed_doc
from app.api.spec import SECURED, Blueprint
from app.chat.relayed import COMPLETIONS_SURFACE
from app.schemas.completions import (
    CompletionEventSchema,
    CompletionRequestSchema,
    CompletionSchema,
)

bp = Blueprint("completions", __name__, errors=SECURED, secured=True,
               description="OpenAI's legacy text completions, served by the models whose "
                           "deployments list `completions` in `endpoints:`.")

_validate = validated_by(CompletionRequestSchema())


@bp.post("/v1/completions")
@relayed_doc(bp, summary="Create a text completion (legacy, OpenAI-compatible)",
             family="completions",
             description="Fields the gateway does not know are passed to the upstream "
                         "untouched. With `stream: true` the answer is `text/event-stream`: "
                         "one `Completion` chunk per `data:` event, then `data: [DONE]`; an "
                         "error after the stream began is a final `data: {\"error\": ...}` "
                         "event.",
             request=CompletionRequestSchema, answer=CompletionSchema,
             events=CompletionEventSchema,
             examples={"hello": COMPLETIONS_EXAMPLE, "stream": COMPLETIONS_STREAM_EXAMPLE})
def create_completion() -> Response:
    return serve(COMPLETIONS_SURFACE, _validate)
