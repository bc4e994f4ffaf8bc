"""``POST /v1/chat/completions``: parse and validate, call the chat service, serialize."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Response, g, request

from app.api.bodies import read_json_object
from app.api.chat_doc import chat_completion_doc
from app.api.spec import SECURED, Blueprint
from app.chat.service import ChatEvents
from app.chat.surfaces import CHAT, Surface
from app.errors import InvalidRequestError
from app.gateway import gateway
from app.routing.options import FALLBACKS_HEADER
from app.schemas.chat import ChatCompletionRequestSchema, first_error
from app.streaming import SSE_MIMETYPE

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

bp = Blueprint("chat", __name__, errors=SECURED, secured=True,
               description="OpenAI-compatible chat completions.")


class EventStreamResponse(Response):
    """A stream whose events go to the WSGI server as they are (werkzeug would wrap them in
    two more iterators: a frame each per event, and on every idle stream's saved stack). The
    events are bytes already; closing them runs this response's close callbacks."""

    def get_app_iter(self, environ: WSGIEnvironment) -> Iterable[bytes]:
        events = self.response
        if not isinstance(events, ChatEvents) or environ["REQUEST_METHOD"] == "HEAD":
            return super().get_app_iter(environ)
        events.after_close(self._closed)
        return events

    def _closed(self) -> None:
        for callback in self._on_close:
            callback()


_schema = ChatCompletionRequestSchema()


def validate_chat_body(body: dict[str, Any]) -> None:
    """Raises InvalidRequestError (400) naming the first invalid field as ``param``."""
    errors = _schema.validate(body)
    if errors:
        param, message = first_error(errors)
        if message == "Missing data for required field.":
            raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param,
                                      code="missing_required_parameter")
        raise InvalidRequestError(f"Invalid value for '{param}': {message}", param=param,
                                  code="invalid_value")


def serve(surface: Surface, validate: Callable[[dict[str, Any]], None] | None = None
          ) -> Response:
    """Run the request's JSON body through the pipeline as ``surface``'s API; its answer.

    ``validate`` checks the body first (the surfaces that translate validate as they do).
    """
    chat = gateway().chat
    log = g.log
    trace = chat.start(g.principal, request_id=g.request_id, started=log.started)
    log.detail = lambda status, code, duration: chat.finish(trace, status=status,
                                                            error_code=code, duration=duration)
    body = read_json_object()
    if validate is not None:
        validate(body)
    outcome = chat.complete(trace, body, cache_control=request.headers.get("Cache-Control", ""),
                            fallbacks=request.headers.get(FALLBACKS_HEADER), surface=surface)
    if outcome.events is not None:
        return EventStreamResponse(outcome.events, status=outcome.status,
                                   mimetype=SSE_MIMETYPE, headers=outcome.headers)
    return Response(outcome.body, status=outcome.status, mimetype="application/json",
                    headers=outcome.headers)


@bp.post("/v1/chat/completions")
@chat_completion_doc(bp)
def create_chat_completion() -> Response:
    return serve(CHAT, validate_chat_body)
