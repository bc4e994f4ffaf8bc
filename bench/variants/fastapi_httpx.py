"""FastAPI + httpx relay (uvicorn, 1 worker): the async reference most users compare against.

    python -m bench.variants.fastapi_httpx --port 8001 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100/v1")
HEADERS = {"Content-Type": "application/json"}
STATE: dict[str, httpx.AsyncClient] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Pool as large as the biggest scenario so the pool is not what is measured.
    limits = httpx.Limits(max_connections=4096, max_keepalive_connections=4096)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(600, connect=5)) as c:
        STATE["client"] = c
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    """Relay one chat completion; stream it chunk by chunk when the body asks for a stream."""
    raw = await request.body()
    body = json.loads(raw)
    client = STATE["client"]
    url = f"{UPSTREAM}/chat/completions"
    if body.get("stream"):
        up = await client.send(client.build_request("POST", url, content=raw, headers=HEADERS),
                               stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in up.aiter_raw():
                    yield chunk
            finally:
                await up.aclose()

        return StreamingResponse(relay(), status_code=up.status_code,
                                 media_type="text/event-stream")
    up = await client.post(url, content=raw, headers=HEADERS)
    return Response(up.content, status_code=up.status_code, media_type="application/json")


def main() -> None:
    """Serve with uvicorn (uvloop + httptools when installed), one worker, no access log."""
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    global UPSTREAM
    UPSTREAM = args.upstream
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, loop="auto", http="auto",
                access_log=False, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
