"""The OpenAPI description of the APIs relayed as they are (``/v1/embeddings``,
``/v1/completions``): the chat operation's headers, errors and 429, with each API's own
request, answer and (for streams) event schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.api.chat_doc import REQUEST_HEADERS, TOO_MANY
from app.api.headers import openapi_headers as headers
from app.api.spec import Blueprint, documented
from app.http_headers import CHAT_HEADERS, RATE_LIMIT_HEADERS, RETRY_AFTER, ROUTING_HEADERS
from app.schemas.common import ErrorSchema


def relayed_doc(bp: Blueprint, *, summary: str, description: str, family: str,
                request: type, answer: type, examples: dict[str, str],
                events: type | None = None) -> Callable[[Any], Any]:
    """The documentation decorator of a relayed API's view; ``family`` is what a deployment
    must list in ``endpoints:`` to serve it."""
    ok = "The answer (JSON)" + (", or with `stream: true` its chunks (server-sent events)"
                                if events is not None else "")
    decorators = [
        bp.doc(summary=summary, description=description, parameters=REQUEST_HEADERS),
        bp.arguments(request, examples=examples),
        bp.response(200, answer, description=ok,
                    headers=headers({**ROUTING_HEADERS, **CHAT_HEADERS})),
    ]
    if events is not None:
        decorators.append(bp.alt_response(200, schema=events, content_type="text/event-stream",
                                          description=ok, success=True))
    decorators += [
        bp.errors(
            _400=f"Invalid JSON or field (`param` names it), or a model none of whose "
                 f"deployments serve {family} (`model_not_supported`)",
            _404="Unknown model, or a model the key may not use",
            _502="The upstream failed or could not be reached",
            _503="No deployment available, the upstream's 503, or the key store is down",
            _504="The upstream timed out"),
        bp.alt_response(429, schema=ErrorSchema, description=TOO_MANY,
                        headers=headers({RETRY_AFTER: ("Seconds to wait", "integer"),
                                         **RATE_LIMIT_HEADERS})),
    ]
    return documented(*decorators)
