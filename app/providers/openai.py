"""Any OpenAI-compatible upstream: OpenAI, LM Studio, vLLM, Ollama, llama.cpp server, ...

One ``requests.Session`` per deployment, created once per process, with a connection pool
large enough for every concurrent stream the worker can hold. Responses are relayed as bytes:
a non-stream body is returned untouched, stream events are passed through as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter

from app.errors import GatewayError, UpstreamError, UpstreamHTTPError, UpstreamTimeoutError
from app.providers.base import ChatRequest, ChatResult, ChatStream, Provider, Usage
from app.settings import Deployment, Settings
from app.streaming import DONE_EVENT, SSEBuffer, event_data, iter_events, sse_error_event

USER_AGENT = "neuroroute/0.1"
MAX_ERROR_BODY = 256 * 1024  # bytes of an upstream error body we are willing to read


def build_session(settings: Settings) -> requests.Session:
    """A pooled session for one deployment.

    ``trust_env`` is off unless configured: with it on, ``requests`` looks up proxy settings
    and netrc in the environment on every call, which is measurable on the hot path.
    ``max_retries=0``: retries are the router's decision, not urllib3's.
    """
    session = requests.Session()
    session.trust_env = settings.upstream_trust_env
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=settings.upstream_pool_maxsize,
                          max_retries=0, pool_block=False)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def upstream_error_from_response(status: int, content: bytes, deployment: Deployment,
                                 headers: Any = None) -> GatewayError:
    """Map an upstream error answer to what the client sees.

    An OpenAI-shaped error body is relayed as is with the upstream's status. A 401/403 from
    the upstream means *the gateway's* credentials for that deployment are wrong, not the
    client's key, so it becomes a 502 instead of telling the client its own key is bad.
    """
    relay_headers = {}
    if headers is not None and status in (429, 503) and headers.get("Retry-After"):
        relay_headers["Retry-After"] = headers["Retry-After"]
    try:
        body = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        body = None
    message = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and status not in (401, 403):
            return UpstreamHTTPError(status, body, headers=relay_headers)
        if isinstance(err, dict):
            message = err.get("message")
        elif isinstance(err, str):  # some local servers answer {"error": "text"}
            message = err
        elif isinstance(body.get("detail"), str):  # FastAPI-based servers
            message = body["detail"]
    if message is None:
        snippet = content[:200].decode("utf-8", "replace").strip()
        message = f"upstream returned HTTP {status}" + (f": {snippet}" if snippet else "")
    if status in (401, 403):
        return UpstreamError(f"The upstream rejected the gateway's credentials for deployment "
                             f"'{deployment.id}': {message}", code="upstream_auth_error")
    err_type = "invalid_request_error" if status < 500 else "upstream_error"
    mapped = GatewayError(str(message), status=status, code=None, headers=relay_headers)
    mapped.type = err_type
    return mapped


def map_request_exception(exc: requests.RequestException, deployment: Deployment) -> GatewayError:
    """Connect errors become 502, timeouts 504; the message names the deployment, not secrets."""
    if isinstance(exc, requests.Timeout):
        kind = "connecting to" if isinstance(exc, requests.ConnectTimeout) else "waiting for"
        return UpstreamTimeoutError(f"Timed out {kind} the upstream of deployment "
                                    f"'{deployment.id}'.")
    if isinstance(exc, requests.ConnectionError):
        return UpstreamError(f"Could not connect to the upstream of deployment "
                             f"'{deployment.id}'.", code="upstream_unavailable")
    return UpstreamError(f"Upstream request failed for deployment '{deployment.id}': "
                         f"{type(exc).__name__}")


class OpenAIProvider(Provider):
    kind = "openai"

    def __init__(self, deployment: Deployment, *, settings: Settings,
                 session: requests.Session | None = None) -> None:
        super().__init__(deployment, settings=settings)
        self.session = session or build_session(settings)
        self.url = f"{deployment.api_base}/chat/completions"
        self.timeout = (deployment.connect_timeout or settings.upstream_connect_timeout,
                        deployment.read_timeout or settings.upstream_read_timeout)
        self.headers = self._base_headers()
        self._template = self._prepare_template()

    def _base_headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.deployment.api_key:
            headers["Authorization"] = f"Bearer {self.deployment.api_key}"
        headers.update(self.deployment.headers)
        return headers

    def _prepare_template(self) -> requests.PreparedRequest:
        """The upstream request as ``Session.request`` would prepare it, minus body and ids.

        ``Session.request`` re-parses the URL and re-merges the session's headers, cookies,
        auth and hooks on every call: about 15% of the worker's CPU when relaying (bench S1
        profile). For one deployment the result is the same every time, so it is done once;
        ``_post`` copies it and only sets the body and the per-request headers.
        """
        req = requests.Request("POST", self.url, headers=self.headers, data=b"")
        return self.session.prepare_request(req)

    def _prepared(self, body: bytes, headers: dict[str, str]) -> requests.PreparedRequest:
        prep = self._template.copy()
        assert prep.headers is not None
        prep.headers.update(headers)
        prep.headers["Content-Length"] = str(len(body))
        prep.body = body
        return prep

    def payload(self, request: ChatRequest) -> bytes:
        """The upstream body: the client's, with the deployment's model name."""
        body = request.body
        if body.get("model") != self.deployment.model:
            body = {**body, "model": self.deployment.model}
        return orjson.dumps(body)

    def _post(self, request: ChatRequest, *, stream: bool) -> requests.Response:
        session = self.session
        try:
            if session.trust_env or session.cookies:
                # Proxies/netrc from the environment, or cookies the upstream set: let
                # requests merge them per call, exactly as before.
                headers = {**self.headers, "X-Request-ID": request.request_id}
                if stream:
                    headers["Accept"] = "text/event-stream"
                return session.post(self.url, data=self.payload(request), headers=headers,
                                    timeout=self.timeout, stream=stream)
            extra = {"X-Request-ID": request.request_id}
            if stream:
                extra["Accept"] = "text/event-stream"
            # The same keyword arguments Session.request passes when trust_env is off.
            return session.send(self._prepared(self.payload(request), extra),
                                timeout=self.timeout, allow_redirects=True, stream=stream,
                                proxies=dict(session.proxies), verify=session.verify,
                                cert=session.cert)
        except requests.RequestException as exc:
            raise map_request_exception(exc, self.deployment) from None

    def complete(self, request: ChatRequest) -> ChatResult:
        resp = self._post(request, stream=False)
        content = resp.content
        if resp.status_code >= 400:
            raise upstream_error_from_response(resp.status_code, content, self.deployment,
                                               resp.headers)
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"The upstream of deployment '{self.deployment.id}' returned "
                                f"invalid JSON.", code="upstream_invalid_response") from None
        if not isinstance(parsed, dict) or "choices" not in parsed:
            raise UpstreamError(f"The upstream of deployment '{self.deployment.id}' returned "
                                f"no completion.", code="upstream_invalid_response")
        return ChatResult(content, Usage.from_openai(parsed.get("usage")), resp.status_code)

    def stream(self, request: ChatRequest) -> ChatStream:
        resp = self._post(request, stream=True)
        try:
            if resp.status_code >= 400:
                raise upstream_error_from_response(resp.status_code, _read_bounded(resp),
                                                   self.deployment, resp.headers)
            ctype = resp.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                raise UpstreamError(f"The upstream of deployment '{self.deployment.id}' did not "
                                    f"answer with an event stream ({ctype or 'no type'}).",
                                    code="upstream_invalid_response")
            chunks = resp.iter_content(chunk_size=None)
            buffer = SSEBuffer()
            first = b""
            # Read up to the first complete event before answering the client: until then a
            # failure is still an HTTP error the router may retry elsewhere.
            while not first:
                chunk = next(chunks, None)
                if chunk is None:
                    raise UpstreamError(f"The upstream of deployment '{self.deployment.id}' "
                                        f"closed the stream before its first event.",
                                        code="upstream_invalid_response")
                first = buffer.feed(chunk)
        except requests.RequestException as exc:
            resp.close()
            raise map_request_exception(exc, self.deployment) from None
        except BaseException:
            resp.close()
            raise
        stream = ChatStream()
        return stream.attach(self._relay(resp, chunks, buffer, first, stream))

    def _relay(self, resp: requests.Response, chunks: Iterator[bytes], buffer: SSEBuffer,
               first: bytes, stream: ChatStream) -> Iterator[bytes]:
        """Yield event blocks as they arrive; end with an error event if the upstream fails."""
        try:
            block: bytes | None = first
            while block is not None:
                if block:
                    if b'"usage"' in block:
                        _observe_usage(block, stream)
                    if block.endswith(DONE_EVENT):
                        stream.completed = True
                    yield block
                chunk = next(chunks, None)
                block = None if chunk is None else buffer.feed(chunk)
            if not stream.completed:
                yield sse_error_event(UpstreamError(
                    f"The upstream of deployment '{self.deployment.id}' ended the stream "
                    f"before it was complete.", code="upstream_stream_truncated"))
        except requests.RequestException as exc:
            err = map_request_exception(exc, self.deployment)
            err.message = f"The stream from deployment '{self.deployment.id}' failed: " \
                          f"{err.message}"
            yield sse_error_event(err)
        finally:
            # Also runs on GeneratorExit (client went away): the upstream is closed at once.
            resp.close()

    def close(self) -> None:
        self.session.close()


def _observe_usage(block: bytes, stream: ChatStream) -> None:
    for event in iter_events(block):
        data = event_data(event)
        if not data or b'"usage"' not in data or data == b"[DONE]":
            continue
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(payload, dict):
            usage = Usage.from_openai(payload.get("usage"))
            if usage is not None:
                stream.usage = usage


def _read_bounded(resp: requests.Response) -> bytes:
    out = bytearray()
    for chunk in resp.iter_content(chunk_size=65536):
        out += chunk
        if len(out) >= MAX_ERROR_BODY:
            break
    return bytes(out)
