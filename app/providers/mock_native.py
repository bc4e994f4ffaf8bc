"""The mock model's answers to embeddings and legacy text completions (no network).

Embeddings are deterministic: each input's vector comes from a hash of that input, so the
same text (or token array) always gets the same vector, and different inputs different
ones. Vectors have :data:`DEFAULT_DIMENSIONS` dimensions unless the request asks for
``dimensions``; they are unit length and float32 values, so ``encoding_format: base64``
(little-endian float32, as OpenAI encodes it) decodes to exactly the ``float`` answer.
Text completions reuse the chat mock's deterministic words, with the same timing.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from app.errors import InvalidRequestError
from app.providers.base import COMPLETIONS, EMBEDDINGS, ChatRequest, ChatResult, ChatStream, Usage
from app.settings import MockParams
from app.streaming import DONE_EVENT, sse_event

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 3072  # text-embedding-3-large's size; more is refused as OpenAI would
# What one answer may hold (a mock must not let one request take a worker's memory): vector
# values (inputs x dimensions), and text completion choices (prompts x n).
MAX_VALUES = 2**20
MAX_CHOICES = 2048


def input_items(value: Any) -> list[Any]:
    """The separate inputs of an ``input`` or ``prompt``: each string or token array."""
    if value is None:
        return [""]
    if isinstance(value, list) and value and isinstance(value[0], str | list):
        return value
    return [value]  # one string, or one token array


def mock_vector(item: Any, dimensions: int) -> array[float]:
    """A unit vector of float32 values seeded by a hash of ``item``; a shorter vector is the
    start of a longer one, renormalized (as OpenAI's ``dimensions`` shortens embeddings)."""
    seed = hashlib.blake2b(orjson.dumps(item), digest_size=16).digest()
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def _base64(vector: array[float]) -> str:
    if sys.byteorder == "big":
        vector = array("f", vector)
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode("ascii")


def embeddings_answer(request: ChatRequest, model: str) -> ChatResult:
    """The embeddings list for ``request``. Raises InvalidRequestError (400) for more than
    :data:`MAX_DIMENSIONS` dimensions or :data:`MAX_VALUES` values."""
    body = request.native or request.body
    dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
    items = input_items(body.get("input"))
    if dimensions > MAX_DIMENSIONS or dimensions * len(items) > MAX_VALUES:
        raise InvalidRequestError(f"Invalid value for 'dimensions': the mock model has at "
                                  f"most {MAX_DIMENSIONS}, and answers at most {MAX_VALUES} "
                                  f"values (inputs x dimensions).", param="dimensions",
                                  code="invalid_value")
    encode = _base64 if body.get("encoding_format") == "base64" else array.tolist
    data = [{"object": "embedding", "index": index,
             "embedding": encode(mock_vector(item, dimensions))}
            for index, item in enumerate(items)]
    prompt = request.prompt_tokens
    usage = Usage(prompt, 0, prompt)
    answer = {"object": "list", "data": data, "model": model,
              "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    return ChatResult(orjson.dumps(answer), usage, api=EMBEDDINGS)


class TextCompletion:
    """One text completion request's answer: its choices' texts, finish reason and usage
    (raises InvalidRequestError, 400, for more than :data:`MAX_CHOICES` choices)."""

    def __init__(self, request: ChatRequest, model: str, *, budget: tuple[int, str],
                 words: Callable[[Any, int], list[str]]) -> None:
        """``budget``: tokens per choice and finish reason; ``words(messages, count)``: the
        chat mock's deterministic tokens for a prompt."""
        body = request.native or request.body
        self.request = request
        self.count, self.finish = (0, "length") if body.get("max_tokens") == 0 else budget
        n = body.get("n") or 1
        echo = body.get("echo") is True
        self.prompts = input_items(body.get("prompt"))
        if len(self.prompts) * n > MAX_CHOICES:
            raise InvalidRequestError(f"The mock model answers at most {MAX_CHOICES} choices "
                                      f"(prompts x n).", param="n", code="invalid_value")
        self.choices: list[tuple[str, list[str]]] = []  # (echoed prompt, tokens) per choice
        for prompt in self.prompts:
            tokens = words([{"content": prompt}], self.count) if self.count else []
            head = prompt if echo and isinstance(prompt, str) else ""
            self.choices += [(head, tokens)] * n
        completion = self.count * len(self.choices)
        self.usage = Usage(request.prompt_tokens, completion, request.prompt_tokens + completion)
        self.base = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                     "created": int(time.time()), "model": model}

    def usage_dict(self) -> dict[str, int]:
        usage = self.usage
        return {"prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens}

    def answer(self) -> ChatResult:
        choices = [{"text": head + "".join(tokens), "index": index, "logprobs": None,
                    "finish_reason": self.finish}
                   for index, (head, tokens) in enumerate(self.choices)]
        body = {**self.base, "choices": choices, "usage": self.usage_dict()}
        return ChatResult(orjson.dumps(body), self.usage, api=COMPLETIONS)

    def events(self, params: MockParams, stream: ChatStream,
               sleep_ms: Callable[[float], None]) -> Iterator[bytes]:
        """The stream's chunks (one per token, then each choice's finish), the usage chunk
        with ``stream_options.include_usage``, ``[DONE]``."""

        def chunk(index: int, text: str, finish: str | None = None) -> bytes:
            return sse_event({**self.base, "choices": [
                {"text": text, "index": index, "logprobs": None, "finish_reason": finish}]})

        sleep_ms(params.ttft_ms)
        for index, (head, tokens) in enumerate(self.choices):
            if head:
                yield chunk(index, head)
            for position, token in enumerate(tokens):
                if position or index:
                    sleep_ms(params.interval_ms)
                yield chunk(index, token)
            yield chunk(index, "", self.finish)
        if self.request.include_usage:
            yield sse_event({**self.base, "choices": [], "usage": self.usage_dict()})
        stream.completed = True
        yield DONE_EVENT
