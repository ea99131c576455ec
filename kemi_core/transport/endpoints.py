"""A worker's sockets: UDP listeners, its own UDP send socket, TCP listeners and connections.

Each worker binds every ``listen`` address with SO_REUSEPORT, plus (when there are several
workers) one UDP socket of its own on an ephemeral port. Requests the worker forwards leave from
that socket and its Via names that port, so RFC 3261 response routing brings each reply back to
the worker that holds its transaction (docs/design.md, "Processes and transactions"). Replies
we send leave from the listen socket the request came in on (RFC 3581 section 4).

Whatever the protocol, what arrives goes up as a parsed message or a parse error with its
RecvInfo (``kemi_core.transport.receiver``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from kemi_core.config.model import ListenAddr
from kemi_core.runtime.ratelimit import RateLimitedLog, brief_error
from kemi_core.sip import ParseLimits, SipParseError, StreamBuffer
from kemi_core.transport.receiver import Receiver, RecvInfo, deliver_datagram
from kemi_core.transport.sockets import bind_tcp, bind_udp

log = logging.getLogger("kemi.transport")

#: The largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP header bytes) and over IPv6.
MAX_UDP4_PAYLOAD = 65_507
MAX_UDP6_PAYLOAD = 65_527


_internal_log = RateLimitedLog(log)


def internal_error(exc: BaseException, where: str) -> None:
    """One line (rate-limited) for an error nothing else caught."""
    _internal_log.error("internal", "internal error handling a message (%s): %s", where,
                        brief_error(exc))


class _UdpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("receiver", "limits", "local_ip", "local_port", "transport")

    def __init__(self, receiver: Receiver, limits: ParseLimits, local_ip: str,
                 local_port: int) -> None:
        self.receiver = receiver
        self.limits = limits
        self.local_ip = local_ip
        self.local_port = local_port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            deliver_datagram(self.receiver, data,
                             RecvInfo("udp", addr[0], addr[1], self.local_ip, self.local_port),
                             self.limits)
        except Exception as exc:  # the dispatcher guards; this is the last line of defence
            internal_error(exc, f"udp from {addr[0]}:{addr[1]}")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer is gone; timers handle the rest.
        log.debug("udp error on %s:%s: %s", self.local_ip, self.local_port, exc)


class _TcpProtocol(asyncio.Protocol):
    """One TCP connection. ``last_active`` moves only when a whole message arrives or we
    send, so a peer trickling bytes cannot keep an idle connection open; a message must
    arrive whole within ``tcp_read_timeout`` of its first byte (see WorkerEndpoints.sweep)."""

    def __init__(self, owner: WorkerEndpoints, local: tuple[str, int]) -> None:
        self.owner = owner
        self.local = local
        self.buffer = StreamBuffer(owner.limits)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_active = 0.0
        self.opened_at = 0.0
        self.got_message = False
        #: when the bytes of the message being received began arriving (0: none pending)
        self.partial_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = tr
        peer = transport.get_extra_info("peername")
        if not peer:  # reset before we saw it: nothing to talk to
            tr.abort()
            self.transport = None
            return
        self.peer = (peer[0], peer[1])
        self.last_active = self.opened_at = self.owner.loop.time()
        if len(self.owner.tcp_conns) >= self.owner.tcp_max_connections:
            # Over the limit (tcp_max_connections): refuse rather than starve the worker.
            self.owner.warn_limited("tcp_refused", "tcp: %d connections open, refusing %s:%s",
                                    len(self.owner.tcp_conns), *self.peer)
            tr.abort()
            self.transport = None
            return
        old = self.owner.tcp_conns.get(self.peer)
        if old is not None and old.transport is not None:
            old.transport.abort()  # the same peer address again: the old one is dead
        self.owner.tcp_conns[self.peer] = self
        self.owner.sweep_tcp()
        if self.local[1] == 0:  # outgoing connection: learn our own address
            sockname = transport.get_extra_info("sockname")
            if sockname:
                self.local = (sockname[0], sockname[1])

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        rcv = RecvInfo("tcp", self.peer[0], self.peer[1], self.local[0], self.local[1])
        try:
            msgs = self.buffer.feed(data)
        except SipParseError as exc:
            self._failed(rcv, exc)
            return
        now = self.owner.loop.time()
        if msgs:
            self.last_active = now
            self.got_message = True
        pending = self.buffer.pending
        if not pending:
            self.partial_since = 0.0
        elif msgs or not self.partial_since:
            self.partial_since = now
        receiver = self.owner.receiver
        for msg in msgs:  # one message failing must not lose those behind it
            try:
                receiver.on_message(msg, rcv)
            except Exception as exc:
                internal_error(exc, f"tcp from {self.peer[0]}:{self.peer[1]}")
        error = self.buffer.error
        if error is not None and self.transport is not None:
            # a bad message after good ones: those were delivered, the stream ends here
            self._failed(rcv, error)

    def _failed(self, rcv: RecvInfo, exc: SipParseError) -> None:
        """The stream cannot be framed any more (RFC 3261 18.3): the receiver hears about the
        bad bytes (it may answer them), then the connection closes once that answer is out."""
        self.owner.warn_limited("parse_errors", "tcp %s:%s: unparsable stream (%s); closing",
                                *self.peer, exc.reason)
        try:
            self.owner.receiver.on_bad_message(self.buffer.failed_data, rcv, exc)
        except Exception as err:
            internal_error(err, f"tcp from {self.peer[0]}:{self.peer[1]}")
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.tcp_conns.get(self.peer) is self:
            del self.owner.tcp_conns[self.peer]
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_active = self.owner.loop.time()
            self.transport.write(data)

    def expired(self, now: float) -> str | None:
        """Why this connection must be closed now, if it must."""
        owner = self.owner
        if self.partial_since and now - self.partial_since > owner.tcp_read_timeout:
            return "message not complete within tcp_msg_read_timeout"
        if not self.got_message and now - self.opened_at > owner.tcp_first_data_timeout:
            return "no message within tcp_msg_data_timeout"
        if now - self.last_active > owner.tcp_idle_timeout:
            return "idle for tcp_connection_lifetime"
        return None


class WorkerEndpoints:
    """The sockets of one worker; implements the core's Transport protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listens: list[ListenAddr],
                 receiver: Receiver, limits: ParseLimits, shared: bool,
                 tcp_max_connections: int = 2048, tcp_idle_timeout: float = 120.0,
                 tcp_read_timeout: float = 20.0, tcp_first_data_timeout: float = 20.0) -> None:
        self.loop = loop
        self.listens = listens
        self.receiver = receiver
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
        #: tcp_msg_read_timeout: a message must arrive whole this long (s) after its first byte.
        self.tcp_read_timeout = tcp_read_timeout
        #: tcp_msg_data_timeout: a new connection must bring a message within this time (s).
        self.tcp_first_data_timeout = tcp_first_data_timeout
        self.limited_log = RateLimitedLog(log)
        #: the expiry sweep is armed (only while connections are open)
        self.sweeping = False

    def warn_limited(self, counter: str, fmt: str, *args: object) -> None:
        """Count a refused connection or bad stream; log it at most once a second."""
        self.counters[counter] = self.counters.get(counter, 0) + 1
        self.limited_log.warning(counter, fmt, *args)

    def close_expired_tcp(self) -> int:
        """Close connections that are idle, silent since they opened, or trickling a message
        too slowly; returns how many."""
        now = self.loop.time()
        closed = 0
        for conn in list(self.tcp_conns.values()):
            why = conn.expired(now)
            if why is not None and conn.transport is not None:
                log.debug("tcp %s:%s: %s; closing", *conn.peer, why)
                conn.transport.abort()
                closed += 1
        return closed

    def _sweep_period(self) -> float:
        return max(0.1, min(self.tcp_idle_timeout, self.tcp_read_timeout,
                            self.tcp_first_data_timeout, 10.0) / 4)

    def _idle_sweep(self) -> None:
        self.sweeping = False
        self.close_expired_tcp()
        self.sweep_tcp()

    def sweep_tcp(self) -> None:
        """Look for expired connections while there are connections (an idle worker without
        any is not woken for it)."""
        if not self.sweeping and self.tcp_conns:
            self.sweeping = True
            self.loop.call_later(self._sweep_period(), self._idle_sweep)

    async def start(self) -> None:
        for lst in self.listens:
            if lst.proto == "udp":
                sock = bind_udp(lst.host, lst.port, self.shared)
                make_udp: Callable[[], _UdpProtocol] = functools.partial(
                    _UdpProtocol, self.receiver, self.limits, lst.host, lst.port)
                tr, _ = await self.loop.create_datagram_endpoint(make_udp, sock=sock)
                self.udp[(lst.host, lst.port)] = tr  # type: ignore[assignment]
            elif lst.proto == "tcp":
                sock = bind_tcp(lst.host, lst.port, self.shared)
                make_tcp: Callable[[], _TcpProtocol] = functools.partial(
                    _TcpProtocol, self, (lst.host, lst.port))
                server = await self.loop.create_server(make_tcp, sock=sock)
                self.tcp_servers.append(server)
            else:
                log.warning("listen %s:%s:%s: protocol not supported, skipped", lst.proto, lst.host, lst.port)
        first_udp = next((lst for lst in self.listens if lst.proto == "udp"), None)
        if first_udp is not None:
            if self.shared:
                sock = bind_udp(first_udp.host, 0, reuse_port=False)
                tr, _ = await self.loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.receiver, self.limits, first_udp.host,
                                         sock.getsockname()[1]), sock=sock)
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
            limit = MAX_UDP6_PAYLOAD if ":" in host else MAX_UDP4_PAYLOAD
            if len(data) > limit:
                # The kernel would refuse it later, where nobody hears (error_received): say
                # so now, so the caller (tm) answers at once instead of waiting for a timeout.
                self.warn_limited("udp_too_large", "udp: %d bytes to %s:%s do not fit in a "
                                  "UDP datagram (at most %d): not sent", len(data), host, port,
                                  limit)
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
            self.warn_limited("tcp_connect_failed", "tcp connect to %s:%s failed: %s", host,
                              port, exc)
            self.tcp_pending.pop((host, port), None)
            return
        for data in self.tcp_pending.pop((host, port), []):
            proto.write(data)

    def stop_accepting(self, udp: bool = False) -> None:
        """Accept no new TCP connections (open ones stay for the transactions in progress);
        with ``udp``, close the shared UDP listen sockets too (this worker's own socket, where
        replies to its transactions arrive, stays)."""
        for server in self.tcp_servers:
            server.close()
        self.tcp_servers.clear()
        if udp and self.own_udp is not None and self.own_udp not in self.udp.values():
            for tr in self.udp.values():
                tr.close()
            self.udp.clear()

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
