"""Type and range checks of request fields, worded the way each surface's own API words them.

Both request translators validate what they translate; the checks are the same and only the
wording differs (Anthropic: ``Input should be a valid list.``; OpenAI: ``Invalid type for
'input': expected an array.``), so each module builds one :class:`Checks` with its wording.
Every failure is an :class:`~app.errors.InvalidRequestError` (400) with ``param`` set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import InvalidRequestError

Wording = Callable[[str, str], str]  # (param, what was expected) -> message


def anthropic_wording(param: str, expected: str) -> str:
    return f"Input should be {expected}."


def openai_wording(param: str, expected: str) -> str:
    return f"Invalid type for '{param}': expected {expected}."


def invalid(param: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def unsupported(param: str, message: str) -> InvalidRequestError:
    """What the chat pipeline cannot do (valid for the surface, not translatable)."""
    return invalid(param, message, "unsupported_parameter")


def missing(param: str, message: str) -> InvalidRequestError:
    return invalid(param, message, "missing_required_parameter")


def unknown(param: str, message: str) -> InvalidRequestError:
    return invalid(param, message, "unknown_parameter")


class Checks:
    """Each method returns ``value`` when it is of the expected kind, else raises."""

    def __init__(self, wording: Wording) -> None:
        self.wording = wording

    def fail(self, param: str, expected: str) -> InvalidRequestError:
        return invalid(param, self.wording(param, expected))

    def object(self, value: Any, param: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(param, "an object")
        return value

    def array(self, value: Any, param: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(param, "an array")
        return value

    def string(self, value: Any, param: str, *, empty: bool = True) -> str:
        if not isinstance(value, str):
            raise self.fail(param, "a string")
        if not empty and not value:
            raise self.fail(param, "a non-empty string")
        return value

    def boolean(self, value: Any, param: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(param, "a boolean")
        return value

    def integer(self, value: Any, param: str, minimum: int, maximum: int | None = None) -> int:
        """A whole number (JSON's ``2.0`` is the integer 2, as for the chat API)."""
        if type(value) is float and value.is_integer() and abs(value) < 2.0**63:
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum \
                or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.fail(param, f"an integer {bounds}")
        return value

    def number(self, value: Any, param: str, low: float, high: float) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) \
                or not low <= value <= high:
            raise self.fail(param, f"a number between {low:g} and {high:g}")
        return value
