"""binrpc on the control socket's connections (asyncio glue around BinRpcSession).

A stream connection whose first byte is binrpc's magic is handed here by the control socket
server; datagram sockets (``udp:``, ``unixd:``) speak binrpc only, one packet per datagram.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kemi_core.rpc.binrpc_codec import MAGIC_VERSION, BinRpcError
from kemi_core.rpc.binrpc_session import BinRpcSession
from kemi_core.rpc.protocol import run_command
from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.rpc")

#: The first byte of every binrpc packet (JSON-RPC requests start with "{" or whitespace).
BINRPC_FIRST = bytes([MAGIC_VERSION])


def new_session(core: Core) -> BinRpcSession:
    return BinRpcSession(lambda method, params: run_command(core, method, params))


async def binrpc_stream(core: Core, first: bytes, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
    """Answer binrpc requests until the peer closes or sends something that is not binrpc."""
    session = new_session(core)
    data = first
    while data:
        try:
            out = session.receive(data)
        except BinRpcError as exc:
            log.warning("control socket: closing a binrpc connection: %s", exc.reason)
            return
        if out:
            writer.write(out)
            await writer.drain()
        data = await reader.read(65536)


class BinRpcDatagram(asyncio.DatagramProtocol):
    """binrpc over datagrams: each datagram is one request, answered to its sender."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            out = new_session(self.core).receive(data)
        except BinRpcError as exc:
            log.warning("control socket: dropping a datagram from %s: %s", addr, exc.reason)
            return
        if out and self.transport is not None and addr:
            self.transport.sendto(out, addr)
