"""Cheap token estimates for when no tokenizer answer is available (mock, limits, routing).

About four characters per token for English text plus a few tokens of framing per message,
which is what OpenAI's own guidance gives; it is an estimate and is marked as one wherever it
ends up in accounting.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
                elif part.get("type") == "image_url":
                    total += 85 * CHARS_PER_TOKEN  # OpenAI's base cost of a low-detail image
        return total
    return 0


def estimate_message_tokens(messages: Any) -> int:
    """Estimate the prompt tokens of an OpenAI ``messages`` list."""
    if not isinstance(messages, list):
        return 0
    chars = 0
    for message in messages:
        if isinstance(message, dict):
            chars += _content_chars(message.get("content"))
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages) + 3


def estimate_text_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN) if text else 0


def estimate_input_tokens(value: Any) -> int:
    """Estimate the tokens of an embeddings ``input`` or a text completion ``prompt``: a
    string (or each string of a list) like :func:`estimate_text_tokens`, a token array (or
    each of a list of them) by its length. There is no per-item framing to add."""
    if isinstance(value, str):
        return estimate_text_tokens(value)
    if not isinstance(value, list):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += estimate_text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
        else:  # an integer of a single token array
            total += 1
    return total
