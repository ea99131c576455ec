"""asyncio unix-socket server for the control socket (runs in the main process)."""

from __future__ import annotations

import asyncio
import logging
import os

from kemi_core.rpc.protocol import handle_line
from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.rpc")

DEFAULT_CTL = "unix:/run/kemi/kemi_ctl"


def socket_path(spec: str) -> str:
    """``unix:/path`` (Kamailio's ctl binrpc form) -> ``/path``; other forms are refused."""
    if spec.startswith("unix:"):
        return spec[5:]
    if spec.startswith("/"):
        return spec
    raise ValueError(f"control socket {spec!r}: only unix:/path is supported")


async def serve(core: Core, path: str) -> asyncio.AbstractServer:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(handle_line(core, line))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path=path, limit=1 << 20)
    os.chmod(path, 0o660)
    log.info("control socket listening on unix:%s", path)
    return server
