"""Upstream credentials: static keys and OAuth2 client-credentials tokens.

A provider asks its :class:`Credentials` for headers before each upstream call and tells it
when the upstream answered 401, so an expired or revoked token is replaced once and the call
retried once. Secrets never appear in messages or logs: errors name the deployment and the
token endpoint's status, nothing else.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import requests

from app.errors import GatewayError, UpstreamError
from app.providers.upstream import read_bounded
from app.settings import Deployment, OAuth2Config

# Refresh this long before the token endpoint's expiry (capped at half the lifetime), so a
# token never expires between being handed out and reaching the upstream.
EXPIRY_MARGIN_S = 60.0
DEFAULT_LIFETIME_S = 300.0  # when the token endpoint does not say (expires_in is optional)
# After a failed token request, callers get the same error for this long instead of queueing
# up one failing request each behind the lock.
FAILURE_HOLD_S = 1.0
MAX_TOKEN_RESPONSE = 64 * 1024
# Every caller waits behind the lock while a token is fetched, so the token endpoint gets a
# short read timeout instead of the long one meant for generating completions.
TOKEN_READ_TIMEOUT_S = 15.0


class Credentials(ABC):
    """What a provider sends to authenticate itself to one upstream."""

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """Headers to add to the next upstream request; raise GatewayError if unobtainable."""

    def rejected(self, sent: Mapping[str, str]) -> bool:
        """The upstream answered 401 to a request sent with ``sent``.

        Return True when a retry with fresh credentials may succeed. Static keys cannot get
        better by retrying, so the default is False.
        """
        return False


class StaticCredentials(Credentials):
    """A fixed key (or none) sent the same way on every request."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def headers(self) -> dict[str, str]:
        return self._headers


class TokenManager:
    """Caches one OAuth2 client-credentials access token and refreshes it single-flight.

    Any number of concurrent callers cause one token request: the first caller that finds
    no valid token takes the lock and fetches; the others wait on the lock and then find the
    fresh token. ``threading.Lock`` is what gevent's monkey-patching turns into a cooperative
    lock, so this holds for greenlets in a Gunicorn gevent worker and for plain threads.
    """

    def __init__(self, config: OAuth2Config, *, session: requests.Session,
                 timeout: tuple[float, float], owner: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.session = session
        self.timeout = timeout
        self.owner = owner  # the deployment id, for error messages
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._failure: tuple[float, GatewayError] | None = None

    def token(self) -> str:
        """A valid access token, fetching one if needed; raise a 502 GatewayError on failure."""
        token = self._valid_token()
        if token is not None:
            return token
        with self._lock:
            token = self._valid_token()  # another caller may have refreshed while we waited
            if token is not None:
                return token
            if self._failure is not None and self.clock() < self._failure[0]:
                raise self._failure[1]
            try:
                return self._fetch()
            except GatewayError as err:
                self._failure = (self.clock() + FAILURE_HOLD_S, err)
                raise

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the upstream rejected it) unless it was already replaced."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _valid_token(self) -> str | None:
        token = self._token
        if token is not None and self.clock() < self._expires_at:
            return token
        return None

    def _fetch(self) -> str:
        config = self.config
        form = {"grant_type": "client_credentials"}
        if config.scope:
            form["scope"] = config.scope
        if config.audience:
            form["audience"] = config.audience
        auth: tuple[str, str] | None = (config.client_id, config.client_secret)
        if config.client_auth == "body":
            form.update(client_id=config.client_id, client_secret=config.client_secret)
            auth = None
        try:
            resp = self.session.post(config.token_url, data=form, auth=auth,
                                     headers={"Accept": "application/json"},
                                     timeout=self.timeout, stream=True)
        except requests.RequestException as exc:
            raise self._error(f"the request failed ({type(exc).__name__})") from None
        try:
            content = read_bounded(resp, MAX_TOKEN_RESPONSE)
        except requests.RequestException as exc:
            raise self._error(f"reading the answer failed ({type(exc).__name__})") from None
        finally:
            resp.close()
        status = resp.status_code
        if status != 200:
            raise self._error(f"HTTP {status}{_oauth_error_suffix(content)}")
        token, lifetime = _parse_token_response(content)
        if token is None:
            raise self._error("the answer has no access_token")
        margin = min(EXPIRY_MARGIN_S, lifetime / 2)
        self._token = token
        self._expires_at = self.clock() + lifetime - margin
        self._failure = None
        return token

    def _error(self, detail: str) -> GatewayError:
        return UpstreamError(f"Could not obtain an access token for deployment '{self.owner}' "
                             f"from {self.config.token_url}: {detail}.",
                             code="upstream_auth_error")


def _parse_token_response(content: bytes) -> tuple[str | None, float]:
    try:
        body: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None, 0.0
    if not isinstance(body, dict):
        return None, 0.0
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        return None, 0.0
    lifetime = body.get("expires_in")
    try:
        seconds = float(lifetime) if lifetime is not None else DEFAULT_LIFETIME_S
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME_S
    return token, max(seconds, 1.0)


def _oauth_error_suffix(content: bytes) -> str:
    """RFC 6749's ``error`` code of a failed token answer (never its description or body)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f" ({error})" if isinstance(error, str) and len(error) < 100 else ""


class OAuth2Credentials(Credentials):
    """``Authorization: Bearer <token>`` from a :class:`TokenManager`."""

    def __init__(self, manager: TokenManager) -> None:
        self.manager = manager

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.manager.token()}"}

    def rejected(self, sent: Mapping[str, str]) -> bool:
        value = sent.get("Authorization", "")
        if value.startswith("Bearer "):
            self.manager.invalidate(value[len("Bearer "):])
        return True


def build_credentials(deployment: Deployment, *, session: requests.Session,
                      timeout: tuple[float, float],
                      key_headers: Callable[[str], dict[str, str]]) -> Credentials:
    """The deployment's credentials: OAuth2 when ``auth:`` is set, else its static key.

    ``key_headers`` is the provider's way of sending a static key (``Authorization: Bearer``
    for OpenAI, ``api-key`` for Azure, ``x-api-key`` for Anthropic).
    """
    if deployment.auth is not None:
        token_timeout = (timeout[0], min(timeout[1], TOKEN_READ_TIMEOUT_S))
        return OAuth2Credentials(TokenManager(deployment.auth, session=session,
                                              timeout=token_timeout, owner=deployment.id))
    if deployment.api_key:
        return StaticCredentials(key_headers(deployment.api_key))
    return StaticCredentials({})
