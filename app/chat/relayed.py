"""Client APIs the pipeline relays as they are: embeddings (``/v1/embeddings``) and legacy
text completions (``/v1/completions``).

There is nothing to translate: every deployment that serves them (``endpoints:``) speaks
them itself (OpenAI-compatible servers, Azure, the mock model), so the client's body is the
request's ``native`` body and the upstream's answer goes back byte for byte. What a surface
adds is the prompt-token estimate of its text field, computed once here for the TPM limit,
the budget reservation, routing and the usage record of an answer without usage.
"""

from __future__ import annotations

from typing import Any

from app.chat.surfaces import Surface
from app.providers.base import COMPLETIONS, EMBEDDINGS, ChatRequest
from app.tokens import estimate_input_tokens


class RelayedSurface(Surface):
    """An API relayed as is; ``text_field`` holds its text or tokens."""

    text_field: str
    # A cached answer is in this API, which the chat replay cannot stream: a stream request
    # neither reads nor fills the cache (non-stream answers are cached as they are).
    replays_streams = False

    def request(self, body: dict[str, Any], *, request_id: str) -> ChatRequest:
        return ChatRequest(body, body["model"], request_id,
                           prompt_tokens=estimate_input_tokens(body.get(self.text_field)),
                           api=self.api, native=body)


class EmbeddingsSurface(RelayedSurface):
    api = EMBEDDINGS
    text_field = "input"

    def request(self, body: dict[str, Any], *, request_id: str) -> ChatRequest:
        request = super().request(body, request_id=request_id)
        # Embeddings have no stream: a ``stream`` field goes upstream as the client sent it
        # (an upstream that knows no such field says so), and the answer is one JSON body.
        request.stream = request.include_usage = False
        return request


class CompletionsSurface(RelayedSurface):
    api = COMPLETIONS
    text_field = "prompt"
    content_marker = b'"text":'  # a chunk with text (the estimate of an unreported usage)


EMBEDDINGS_SURFACE = EmbeddingsSurface()
COMPLETIONS_SURFACE = CompletionsSurface()
