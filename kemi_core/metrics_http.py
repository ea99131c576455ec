"""A small HTTP/1.1 server for ``GET /metrics`` on the main process's event loop.

It runs beside the control socket, never in a worker, so a scrape costs the SIP path nothing.
One request per connection (``Connection: close``); a request head larger than MAX_HEAD or
slower than HEAD_TIMEOUT is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kemi_core.metrics import CONTENT_TYPE

log = logging.getLogger("kemi.metrics")

MAX_HEAD = 8192
HEAD_TIMEOUT = 10.0

Render = Callable[[], str]


def _response(status: str, body: bytes, content_type: str, head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nServer: kemi\r\nConnection: close\r\n\r\n")
    return head.encode() + (b"" if head_only else body)


def answer(head: bytes, render: Render, path: str = "/metrics") -> bytes:
    """The response to one request head (sans-IO)."""
    try:
        method, target, version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    except ValueError:
        return _response("400 Bad Request", b"bad request line\n", "text/plain")
    if not version.startswith("HTTP/1."):
        return _response("505 HTTP Version Not Supported", b"HTTP/1.x only\n", "text/plain")
    if target.split("?", 1)[0] != path:
        return _response("404 Not Found", f"try {path}\n".encode(), "text/plain")
    if method not in ("GET", "HEAD"):
        return _response("405 Method Not Allowed", b"GET only\n", "text/plain")
    try:
        body = render().encode()
    except Exception:  # a broken statistic must not take the endpoint down
        log.exception("rendering the metrics failed")
        return _response("500 Internal Server Error", b"metrics failed\n", "text/plain")
    return _response("200 OK", body, CONTENT_TYPE, head_only=method == "HEAD")


async def serve_metrics(host: str, port: int, render: Render,
                        path: str = "/metrics") -> asyncio.AbstractServer:
    """Serve ``render()`` (Prometheus text) at ``GET path`` on host:port, from the calling
    process's running event loop (the main process's: off the SIP path)."""
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            writer.write(answer(head, render, path))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, host, port, limit=MAX_HEAD, reuse_address=True)
    log.info("metrics on http://%s:%d%s", host, port, path)
    return server
