"""Text the way OpenAI's embeddings (``input``) and legacy completions (``prompt``) take it:
a string, an array of strings, a token array, or an array of token arrays.

Checked in plain Python (an embeddings batch is up to 2,048 inputs, a token array thousands
of integers: a marshmallow field per item would cost more than the relay). The error names
the item at fault, e.g. ``input[3]``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from app.schemas.common import INT64_MAX

SHAPES = "a string, an array of strings, a token array or an array of token arrays"


def _token(value: Any) -> bool:
    """A token id: a whole JSON number (``2.0`` is 2) from 0 within 64 bits, not a boolean."""
    if type(value) is int:
        return 0 <= value <= INT64_MAX
    return type(value) is float and value.is_integer() and 0 <= value <= INT64_MAX


def _tokens(value: Any) -> bool:
    if type(value) is not list or not value:
        return False
    for token in value:
        if not (type(token) is int and 0 <= token <= INT64_MAX) and not _token(token):
            return False
    return True


class TextOrTokens(fields.Field[Any]):
    """``min_length``: of every string; ``max_items``: of an array of strings or of token
    arrays (one token array is not bounded here: the upstream knows its model's limit)."""

    def __init__(self, *, min_length: int = 0, max_items: int | None = None,
                 **kwargs: Any) -> None:
        self.min_length = min_length
        self.max_items = max_items
        text: dict[str, Any] = {"type": "string"}
        if min_length:
            text["minLength"] = min_length
        tokens = {"type": "array", "minItems": 1,
                  "items": {"type": "integer", "minimum": 0, "maximum": INT64_MAX}}
        batch: dict[str, Any] = {"type": "array", "minItems": 1}
        if max_items is not None:
            batch["maxItems"] = max_items
        shapes: list[dict[str, Any]] = [text, {**batch, "items": text}, tokens,
                                        {**batch, "items": tokens}]
        if kwargs.get("allow_none"):
            shapes.append({"type": "null"})
        metadata = {"anyOf": shapes, "description": f"{SHAPES[0].upper()}{SHAPES[1:]}",
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if type(value) is str:
            if len(value) < self.min_length:
                raise ValidationError("Must not be an empty string.")
            return value
        if type(value) is not list or not value:
            raise ValidationError(f"Must be {SHAPES} (arrays not empty).")
        first = value[0]
        if type(first) is str or type(first) is list:
            if self.max_items is not None and len(value) > self.max_items:
                raise ValidationError(f"Must have at most {self.max_items} items.")
            for index, item in enumerate(value):
                self._item(index, item, text=type(first) is str)
        elif not _tokens(value):
            position = next(i for i, t in enumerate(value) if not _token(t))
            raise ValidationError({position: ["Must be a token id (an integer from 0) like "
                                              "the other items."]})
        return value

    def _item(self, index: int, item: Any, *, text: bool) -> None:
        if text:
            if type(item) is not str:
                raise ValidationError({index: ["Must be a string like the other items."]})
            if len(item) < self.min_length:
                raise ValidationError({index: ["Must not be an empty string."]})
        elif not _tokens(item):
            raise ValidationError({index: ["Must be a non-empty token array like the other "
                                           "items."]})
