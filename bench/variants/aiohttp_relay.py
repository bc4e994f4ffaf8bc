"""aiohttp server + aiohttp client relay: the fastest common Python async stack.

    python -m bench.variants.aiohttp_relay --port 8002 --upstream http://127.0.0.1:9100/v1
"""

from __future__ import annotations

import argparse
import json

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

HEADERS = {"Content-Type": "application/json"}
SESSION = web.AppKey("session", ClientSession)
URL = web.AppKey("url", str)


async def chat(request: web.Request) -> web.StreamResponse:
    """Relay one chat completion; stream it chunk by chunk when the body asks for a stream."""
    raw = await request.read()
    body = json.loads(raw)
    session = request.app[SESSION]
    async with session.post(request.app[URL], data=raw, headers=HEADERS) as up:
        if body.get("stream"):
            resp = web.StreamResponse(status=up.status, headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        data = await up.read()
        return web.Response(body=data, status=up.status, content_type="application/json")


def make_app(upstream: str) -> web.Application:
    """The relay app; its client session lives as long as the app."""
    app = web.Application()
    app[URL] = f"{upstream}/chat/completions"

    async def client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        # limit=0: no pool cap, so the pool is not what is measured.
        app[SESSION] = ClientSession(connector=TCPConnector(limit=0),
                                     timeout=ClientTimeout(total=None, sock_connect=5))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(client_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    """Serve on 127.0.0.1 with uvloop when installed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None,
                print=None, backlog=4096)


if __name__ == "__main__":
    main()
