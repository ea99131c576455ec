"""asyncio server for the control socket (runs in the main process).

One socket speaks both protocols: a connection whose first byte is binrpc's magic (``kamcmd``)
is served binrpc, any other JSON-RPC 2.0 (one object per line, ``kemi rpc``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from kemi_core.rpc.binrpc_server import BINRPC_FIRST, BinRpcDatagram, binrpc_stream
from kemi_core.rpc.ctl_address import CtlAddress, parse_ctl_address
from kemi_core.rpc.protocol import handle_line
from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.rpc")

DEFAULT_CTL = "unix:/run/kemi/kemi_ctl"

#: parse_ctl_address is re-exported for the ctl module, which checks its addresses with it.
__all__ = ["DEFAULT_CTL", "parse_ctl_address", "serve", "socket_path"]


def socket_path(spec: str) -> str:
    """``unix:/path`` (Kamailio's ctl binrpc form) -> ``/path``; other forms are refused."""
    addr = parse_ctl_address(spec)
    if addr.proto != "unix":
        raise ValueError(f"control socket {spec!r}: not a unix stream socket")
    return addr.path


def _prepare_unix_path(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)


async def serve(core: Core, address: CtlAddress | str) -> Any:
    """Listen on ``address``; returns the server (or datagram transport) to close at the end."""
    addr = parse_ctl_address(address) if isinstance(address, str) else address

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(1)
            if first == BINRPC_FIRST:
                await binrpc_stream(core, first, reader, writer)
                return
            line = first + await reader.readline() if first else b""
            while line:
                writer.write(handle_line(core, line))
                await writer.drain()
                line = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    server: Any
    if addr.proto == "unix":
        _prepare_unix_path(addr.path)
        server = await asyncio.start_unix_server(client, path=addr.path, limit=1 << 20)
        os.chmod(addr.path, 0o660)
    elif addr.proto == "tcp":
        server = await asyncio.start_server(client, addr.host, addr.port, limit=1 << 20,
                                            reuse_address=True)
    elif addr.proto == "unixd":
        _prepare_unix_path(addr.path)
        server, _ = await loop.create_datagram_endpoint(
            lambda: BinRpcDatagram(core), local_addr=addr.path, family=socket.AF_UNIX)
        os.chmod(addr.path, 0o660)
    else:
        server, _ = await loop.create_datagram_endpoint(
            lambda: BinRpcDatagram(core), local_addr=(addr.host, addr.port))
    log.info("control socket listening on %s", addr)
    return server
