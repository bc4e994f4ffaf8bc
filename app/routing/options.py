"""Per-request routing options the client may set (fallbacks on/off), split off the body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequestError

FALLBACKS_HEADER = "x-neuroroute-fallbacks"
OPTIONS_FIELD = "neuroroute"  # gateway-only body field, removed before the upstream sees it


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """Per-request routing choices the client may make."""

    fallbacks: bool = True


def route_options(body: dict[str, Any], fallbacks_header: str | None
                  ) -> tuple[dict[str, Any], RouteOptions]:
    """Split the gateway-only options off a request body.

    The client disables fallbacks with the header ``x-neuroroute-fallbacks: off`` or the body
    field ``"neuroroute": {"fallbacks": false}``; the body field is removed so the upstream
    never sees it. Raises InvalidRequestError (400) for a malformed option.
    """
    fallbacks = True
    if fallbacks_header is not None:
        value = fallbacks_header.strip().lower()
        if value not in ("on", "off", "true", "false", "1", "0"):
            raise InvalidRequestError(f"Header {FALLBACKS_HEADER} must be 'on' or 'off'.",
                                      code="invalid_value")
        fallbacks = value in ("on", "true", "1")
    if OPTIONS_FIELD not in body:
        return body, RouteOptions(fallbacks=fallbacks)
    raw = body[OPTIONS_FIELD]
    unknown = set(raw) - {"fallbacks"} if isinstance(raw, dict) else None
    if unknown is None or unknown or not isinstance(raw.get("fallbacks", True), bool):
        raise InvalidRequestError(f"'{OPTIONS_FIELD}' must be an object like "
                                  f"{{\"fallbacks\": false}}.", param=OPTIONS_FIELD,
                                  code="invalid_value")
    rest = {k: v for k, v in body.items() if k != OPTIONS_FIELD}
    return rest, RouteOptions(fallbacks=fallbacks and raw.get("fallbacks", True))
