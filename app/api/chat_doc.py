"""The OpenAPI description of ``POST /v1/chat/completions``.

Recorded with smorest's decorators through :func:`~app.api.spec.documented`, so the view
stays unwrapped: it keeps its own fast validation (``app.schemas.chat.is_plainly_valid``)
and returns its own response; only the document is made here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.api.docs import CHAT_EXAMPLE, CHAT_STREAM_EXAMPLE
from app.api.headers import openapi_headers as headers
from app.api.spec import Blueprint, documented
from app.http_headers import CHAT_HEADERS, RATE_LIMIT_HEADERS, RETRY_AFTER, ROUTING_HEADERS
from app.schemas.chat import (
    ChatCompletionEventSchema,
    ChatCompletionRequestSchema,
    ChatCompletionSchema,
)
from app.schemas.common import ErrorSchema

DESCRIPTION = (
    "Fields the gateway does not know are passed to the upstream untouched. With "
    "`stream: true` the answer is `text/event-stream`: one `ChatCompletionChunk` per `data:` "
    "event, then `data: [DONE]`. An error after the stream began is sent as a final "
    "`data: {\"error\": ...}` event.")
OK = "The completion (JSON), or with `stream: true` a stream of chunks (server-sent events)"
TOO_MANY = ("The key's rate limit (`rate_limit_exceeded`, with Retry-After and x-ratelimit-* "
            "headers), a spent budget (`insufficient_quota`), every deployment at its rpm/tpm "
            "capacity, the upstream's 429, or too many failed authentications from this "
            "address")
# What app.routing.dispatch.route_options accepts (case-insensitive, spaces around).
FALLBACKS_VALUE = "^[ \t]*([Oo][Nn]|[Oo][Ff][Ff]|[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)[ \t]*$"
REQUEST_HEADERS: list[dict[str, Any]] = [
    {"in": "header", "name": "X-Request-ID", "required": False, "schema": {"type": "string"},
     "description": "Echoed back and sent upstream; generated if absent."},
    {"in": "header", "name": "x-neuroroute-fallbacks", "required": False,
     "schema": {"type": "string", "pattern": FALLBACKS_VALUE},
     "description": "`off` disables fallback groups for this request (same as body field "
                    "`neuroroute: {fallbacks: false}`, which is not sent upstream); `on` is "
                    "the default. Also `true`/`false`/`1`/`0`, in any case; else 400."},
    {"in": "header", "name": "Cache-Control", "required": False, "schema": {"type": "string"},
     "description": "`no-cache`: do not answer from the response cache (the fresh answer is "
                    "stored); `no-store`: bypass it. Other directives are ignored."},
]


def chat_completion_doc(bp: Blueprint) -> Callable[[Any], Any]:
    """The documentation decorator of the chat completion view."""
    return documented(
        bp.doc(summary="Create a chat completion (OpenAI-compatible)",
               description=DESCRIPTION, parameters=REQUEST_HEADERS),
        bp.arguments(ChatCompletionRequestSchema,
                     examples={"hello": CHAT_EXAMPLE, "stream": CHAT_STREAM_EXAMPLE}),
        bp.response(200, ChatCompletionSchema, description=OK,
                    headers=headers({**ROUTING_HEADERS, **CHAT_HEADERS})),
        bp.alt_response(200, schema=ChatCompletionEventSchema, content_type="text/event-stream",
                        description=OK, success=True),
        bp.errors(
            _404="Unknown model, or a model the key may not use",
            _502="The upstream failed or could not be reached",
            _503="No deployment available, the upstream's 503, or the key store is down",
            _504="The upstream timed out"),
        bp.alt_response(429, schema=ErrorSchema, description=TOO_MANY,
                        headers=headers({RETRY_AFTER: ("Seconds to wait", "integer"),
                                         **RATE_LIMIT_HEADERS})),
    )
