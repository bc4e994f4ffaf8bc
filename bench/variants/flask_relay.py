"""Bare Flask + Gunicorn gevent + ``requests`` relay: the naive floor of NeuroRoute's stack.

A plain ``requests.Session()`` with default settings (``trust_env`` on, pool of 10), on
purpose: this is what a first implementation looks like, and what NeuroRoute must beat.

    BENCH_UPSTREAM=http://127.0.0.1:9100/v1 gunicorn -k gevent -w 1 -b 127.0.0.1:8003 \
        bench.variants.flask_relay:app
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import requests
from flask import Flask, Response, request

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100/v1")
HEADERS = {"Content-Type": "application/json"}

app = Flask(__name__)
session = requests.Session()


@app.post("/v1/chat/completions")
def chat() -> Response:
    """Relay one chat completion; stream it chunk by chunk when the body asks for a stream."""
    raw = request.get_data()
    body = json.loads(raw)
    url = f"{UPSTREAM}/chat/completions"
    if body.get("stream"):
        up = session.post(url, data=raw, headers=HEADERS, stream=True, timeout=(5, 600))

        def relay() -> Iterator[bytes]:
            try:
                yield from up.iter_content(chunk_size=None)
            finally:
                up.close()

        return Response(relay(), status=up.status_code, mimetype="text/event-stream")
    up = session.post(url, data=raw, headers=HEADERS, timeout=(5, 600))
    return Response(up.content, status=up.status_code, mimetype="application/json")
