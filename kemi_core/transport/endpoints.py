"""A worker's sockets: UDP listeners, its own UDP send socket, TCP listeners and connections.

Each worker binds every ``listen`` address with SO_REUSEPORT, plus (when there are several
workers) one UDP socket of its own on an ephemeral port. Requests the worker forwards leave from
that socket and its Via names that port, so RFC 3261 response routing brings each reply back to
the worker that holds its transaction (docs/design.md, "Processes and transactions"). Replies
we send leave from the listen socket the request came in on (RFC 3581 section 4).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from kemi_core.config.model import ListenAddr
from kemi_core.runtime.context import RecvInfo
from kemi_core.sip import ParseLimits, SipParseError, StreamBuffer
from kemi_core.transport.sockets import bind_tcp, bind_udp

log = logging.getLogger("kemi.transport")

#: dispatcher entry: (raw datagram or framed message bytes / parsed msg, receive info)
OnData = Callable[[bytes, RecvInfo], None]
OnMsg = Callable[[Any, RecvInfo], None]


class _UdpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("on_data", "local_ip", "local_port", "transport")

    def __init__(self, on_data: OnData, local_ip: str, local_port: int) -> None:
        self.on_data = on_data
        self.local_ip = local_ip
        self.local_port = local_port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.on_data(data, RecvInfo("udp", addr[0], addr[1], self.local_ip, self.local_port))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer is gone; timers handle the rest.
        log.debug("udp error on %s:%s: %s", self.local_ip, self.local_port, exc)


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, owner: WorkerEndpoints, local: tuple[str, int]) -> None:
        self.owner = owner
        self.local = local
        self.buffer = StreamBuffer(owner.limits)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.last_active = self.owner.loop.time()
        if len(self.owner.tcp_conns) >= self.owner.tcp_max_connections:
            # Over the limit (tcp_max_connections): refuse rather than starve the worker.
            log.warning("tcp: %d connections open, refusing %s:%s", len(self.owner.tcp_conns),
                        *self.peer)
            self.owner.counters["tcp_refused"] = self.owner.counters.get("tcp_refused", 0) + 1
            transport.close()
            return
        self.owner.tcp_conns[self.peer] = self
        if self.local[1] == 0:  # outgoing connection: learn our own address
            sockname = transport.get_extra_info("sockname")
            self.local = (sockname[0], sockname[1])

    def data_received(self, data: bytes) -> None:
        self.last_active = self.owner.loop.time()
        rcv = RecvInfo("tcp", self.peer[0], self.peer[1], self.local[0], self.local[1])
        try:
            msgs = self.buffer.feed(data)
        except SipParseError as exc:
            # A broken stream cannot be re-synchronised: drop the connection (RFC 3261 18.3).
            log.warning("tcp %s:%s: unparsable stream (%s); closing", *self.peer, exc.reason)
            self.owner.counters["parse_errors"] = self.owner.counters.get("parse_errors", 0) + 1
            if self.transport is not None:
                self.transport.close()
            return
        for msg in msgs:
            self.owner.on_msg(msg, rcv)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.tcp_conns.get(self.peer) is self:
            del self.owner.tcp_conns[self.peer]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_active = self.owner.loop.time()
            self.transport.write(data)


class WorkerEndpoints:
    """The sockets of one worker; implements the core's Transport protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listens: list[ListenAddr],
                 on_data: OnData, on_msg: OnMsg, limits: ParseLimits, shared: bool,
                 tcp_max_connections: int = 2048, tcp_idle_timeout: float = 120.0) -> None:
        self.loop = loop
        self.listens = listens
        self.on_data = on_data
        self.on_msg = on_msg
        self.limits = limits
        self.shared = shared  # several workers: reuse ports and use an own send socket
        self.udp: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.own_udp: asyncio.DatagramTransport | None = None
        self.own_udp_addr: tuple[str, int] | None = None
        self.tcp_servers: list[asyncio.AbstractServer] = []
        self.tcp_conns: dict[tuple[str, int], _TcpProtocol] = {}
        self.tcp_pending: dict[tuple[str, int], list[bytes]] = {}
        self.counters: dict[str, int] = {}
        self.tcp_max_connections = tcp_max_connections
        #: tcp_connection_lifetime: a connection idle this long (s) is closed.
        self.tcp_idle_timeout = tcp_idle_timeout

    def close_idle_tcp(self) -> int:
        """Close connections idle longer than tcp_idle_timeout; returns how many."""
        cutoff = self.loop.time() - self.tcp_idle_timeout
        idle = [c for c in self.tcp_conns.values() if c.last_active < cutoff]
        for conn in idle:
            if conn.transport is not None:
                conn.transport.close()
        return len(idle)

    def _idle_sweep(self) -> None:
        self.close_idle_tcp()
        self.loop.call_later(min(self.tcp_idle_timeout, 10.0), self._idle_sweep)

    async def start(self) -> None:
        for lst in self.listens:
            if lst.proto == "udp":
                sock = bind_udp(lst.host, lst.port, self.shared)
                make_udp: Callable[[], _UdpProtocol] = functools.partial(
                    _UdpProtocol, self.on_data, lst.host, lst.port)
                tr, _ = await self.loop.create_datagram_endpoint(make_udp, sock=sock)
                self.udp[(lst.host, lst.port)] = tr  # type: ignore[assignment]
            elif lst.proto == "tcp":
                sock = bind_tcp(lst.host, lst.port, self.shared)
                make_tcp: Callable[[], _TcpProtocol] = functools.partial(
                    _TcpProtocol, self, (lst.host, lst.port))
                server = await self.loop.create_server(make_tcp, sock=sock)
                self.tcp_servers.append(server)
                if len(self.tcp_servers) == 1:
                    self.loop.call_later(min(self.tcp_idle_timeout, 10.0), self._idle_sweep)
            else:
                log.warning("listen %s:%s:%s: protocol not supported, skipped", lst.proto, lst.host, lst.port)
        first_udp = next((lst for lst in self.listens if lst.proto == "udp"), None)
        if first_udp is not None:
            if self.shared:
                sock = bind_udp(first_udp.host, 0, reuse_port=False)
                tr, _ = await self.loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.on_data, first_udp.host, sock.getsockname()[1]), sock=sock)
                self.own_udp = tr  # type: ignore[assignment]
                self.own_udp_addr = (first_udp.host, sock.getsockname()[1])
            else:
                self.own_udp = self.udp[(first_udp.host, first_udp.port)]
                self.own_udp_addr = (first_udp.host, first_udp.port)

    # ---- Transport protocol (kemi_core.runtime.core) -----------------------------------
    def local_address(self, proto: str) -> tuple[str, int]:
        if proto == "udp" and self.own_udp_addr is not None:
            return self.own_udp_addr
        for lst in self.listens:
            if lst.proto == proto:
                return (lst.host, lst.port)
        lst = self.listens[0]
        return (lst.host, lst.port)

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        if proto == "udp":
            tr = self.udp.get(local) if local is not None else None
            if tr is None:
                tr = self.own_udp
            if tr is None:
                return False
            tr.sendto(data, (host, port))
            return True
        if proto == "tcp":
            return self._send_tcp(host, port, data)
        log.error("send over %s is not supported", proto)
        return False

    def _send_tcp(self, host: str, port: int, data: bytes) -> bool:
        conn = self.tcp_conns.get((host, port))
        if conn is not None:
            conn.write(data)
            return True
        pending = self.tcp_pending.get((host, port))
        if pending is not None:
            pending.append(data)
            return True
        self.tcp_pending[(host, port)] = [data]
        self.loop.create_task(self._connect(host, port))
        return True

    async def _connect(self, host: str, port: int) -> None:
        try:
            _, proto = await asyncio.wait_for(
                self.loop.create_connection(lambda: _TcpProtocol(self, ("", 0)), host, port), 10)
        except (TimeoutError, OSError) as exc:
            log.warning("tcp connect to %s:%s failed: %s", host, port, exc)
            self.tcp_pending.pop((host, port), None)
            return
        for data in self.tcp_pending.pop((host, port), []):
            proto.write(data)

    def close(self) -> None:
        for tr in self.udp.values():
            tr.close()
        if self.own_udp is not None:
            self.own_udp.close()
        for server in self.tcp_servers:
            server.close()
        for conn in list(self.tcp_conns.values()):
            if conn.transport is not None:
                conn.transport.close()
