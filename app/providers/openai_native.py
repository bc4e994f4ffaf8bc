"""Client APIs other than chat that OpenAI-compatible upstreams speak themselves, relayed as is:
embeddings (``/embeddings``), legacy text completions (``/completions``) and, where the
deployment says so (``responses_api: true``), the Responses API (``/responses``).

The client's body goes upstream with the deployment's model name; the answer comes back
untouched, its usage read on the way (:func:`native_usage`). Completion streams are OpenAI
SSE (``data:`` lines, ``[DONE]``) and use the chat relay's checks; Responses streams are typed
events and get :class:`ResponsesPassThrough`.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import GatewayError, UpstreamError
from app.providers.base import COMPLETIONS, EMBEDDINGS, RESPONSES, ChatStream, Usage
from app.providers.relay import EventPassThrough
from app.providers.upstream import invalid_response
from app.settings import Deployment

# Path under api_base (OpenAI and the OpenAI-compatible servers) of each API.
PATHS = {EMBEDDINGS: "embeddings", COMPLETIONS: "completions", RESPONSES: "responses"}
# The field every answer of the API has (anything else is not an answer).
ANSWER_FIELDS = {EMBEDDINGS: "data", COMPLETIONS: "choices", RESPONSES: "output"}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def responses_usage(data: Any) -> Usage | None:
    """The Responses API's ``usage`` (input/output tokens, cached and reasoning details)."""
    if not isinstance(data, dict):
        return None
    prompt, completion = _int(data.get("input_tokens")), _int(data.get("output_tokens"))
    details = data.get("input_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(prompt, completion, _int(data.get("total_tokens")) or prompt + completion,
                 cached_tokens=cached)


def native_usage(api: str, data: Any) -> Usage | None:
    """An answer's usage in its API's shape (embeddings report only prompt tokens)."""
    if api == RESPONSES:
        return responses_usage(data)
    return Usage.from_openai(data)


def native_payload(native: dict[str, Any] | None, deployment: Deployment, *,
                   include_usage: bool = False) -> bytes:
    """The client's own body with the deployment's model name; ``include_usage`` adds
    ``stream_options.include_usage`` (a completions stream the gateway wants usage of)."""
    body = native or {}
    if body.get("model") != deployment.model:
        body = {**body, "model": deployment.model}
    if include_usage:
        options = body.get("stream_options")
        body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}),
                                           "include_usage": True}}
    return orjson.dumps(body)


def check_answer(api: str, parsed: dict[str, Any], deployment: Deployment) -> None:
    if ANSWER_FIELDS[api] not in parsed:
        raise invalid_response(deployment, f"returned no {api} answer")


def responses_error_event(err: GatewayError) -> bytes:
    """A gateway error as the Responses API's stream ``error`` event."""
    fields = err.to_dict()["error"]
    return b"event: error\ndata: " + orjson.dumps(
        {"type": "error", "code": fields.get("code"), "message": fields.get("message"),
         "param": fields.get("param")}) + b"\n\n"


class ResponsesPassThrough(EventPassThrough):
    """Responses API events relayed as they are; ``response.completed`` (or ``incomplete``)
    completes the stream and gives the usage, ``response.failed`` and ``error`` end it with
    their error. ``response`` holds the final response object (for the store)."""

    def __init__(self, stream: ChatStream, *, deployment: Deployment) -> None:
        super().__init__(stream, deployment=deployment)
        self.response: dict[str, Any] | None = None

    def error_event(self, err: GatewayError) -> bytes:
        return b"" if self.relayed_error else responses_error_event(err)

    def read(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            if isinstance(response, dict):
                self.response = response
                usage = responses_usage(response.get("usage"))
                if usage is not None:
                    self.stream.usage = usage
            if kind == "response.failed":
                self._failed(response.get("error") if isinstance(response, dict) else None)
            else:
                self.stream.completed = True
        elif kind == "error":
            self._failed(event)

    def _failed(self, error: Any) -> None:
        message = error.get("message") if isinstance(error, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        self.error = UpstreamError(f"The upstream of deployment '{self.deployment.id}' failed: "
                                   f"{message or 'stream error'}",
                                   code=str(code) if code else "upstream_error")
