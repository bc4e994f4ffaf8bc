"""Pieces of Anthropic's Messages API format shared by both directions of translation.

:mod:`app.providers.anthropic` reads Anthropic's answers for OpenAI clients, and
:mod:`app.surfaces` reads Anthropic clients' requests for the chat pipeline; where both turn
the same Anthropic block into the same OpenAI object, the code lives here once. Pure
functions only (no provider, no HTTP), so a surface may import it as it imports
:mod:`app.providers.base`.
"""

from __future__ import annotations

from typing import Any

import orjson


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an OpenAI tool call (arguments are a JSON string)."""
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"),
                         "arguments": orjson.dumps(block.get("input") or {}).decode()}}
