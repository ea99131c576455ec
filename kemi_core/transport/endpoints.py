"""A worker's sockets: UDP listeners, TCP and TLS listeners and the stream connections
(``stream``) accepted on them or opened to send.

Each worker has a socket on every UDP ``listen`` address, with SO_REUSEPORT when there are
several workers; with fork=yes the main process made them for the worker's rank and keeps them
(``sockets.RankSockets``), so a replacement worker gets the same ones. Requests the worker
forwards leave from the first UDP listen socket (or the one the script forced) and its Via names
it, whatever the number of workers, as Kamailio's do; replies we send leave from the listen
socket the request came in on (RFC 3581 section 4). With several workers a reply reaches the
worker holding its transaction by the rank mark in our branch (``forwarding.branch_rank``):
the kernel steers most (``steer``), the mailbox brings the rest (``steer_reply``; docs/design.md,
"Processes and transactions").

Whatever the protocol, what arrives goes up as a parsed message or a parse error with its
RecvInfo (``kemi_core.transport.receiver``).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.config.model import ListenAddr
from kemi_core.forwarding.branch_rank import branch_rank
from kemi_core.runtime.ratelimit import RateLimitedLog
from kemi_core.sip import ParseLimits, SipMsg, SipParseError
from kemi_core.sip.syntax import PURE_PYTHON
from kemi_core.transport import outbox as held_sends
from kemi_core.transport.conntable import ConnTable
from kemi_core.transport.handoff import (
    MAIN_RANK,
    Mailbox,
    decode,
    encode_failed,
    encode_received,
    encode_send,
    main_pid,
    owner_key,
    owners_changed,
    owners_seen,
)
from kemi_core.transport.outbox import Outbox
from kemi_core.transport.receiver import Receiver, RecvInfo, deliver_datagram, internal_error
from kemi_core.transport.sockets import RankSockets, bind_tcp, bind_udp
from kemi_core.transport.stream import HttpService, StreamConnection, TlsService
from kemi_core.transport.udp import UdpSocket

try:  # the usual UDP send in one call (Linux), see WorkerEndpoints.send
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import udp_out
except ImportError:
    udp_out = None

if TYPE_CHECKING:
    from kemi_core.shared import SharedTable

log = logging.getLogger("kemi.transport")

#: The largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP header bytes) and over IPv6.
MAX_UDP4_PAYLOAD = 65_507
MAX_UDP6_PAYLOAD = 65_527


#: Which stream protocols a send to ``proto`` may use: a WebSocket connection is reached by
#: either name (a URI says ws for a client connected over wss, as Kamailio's aliases do).
STREAM_FAMILY = {"tcp": ("tcp",), "tls": ("tls",), "ws": ("ws", "wss"), "wss": ("wss", "ws")}

#: the sender field of what the main process hands over
MAIN_SENDER = str(MAIN_RANK)

#: Listen sockets a stream protocol leaves from (WebSocket connections are accepted on TCP and
#: TLS listeners).
LISTEN_PROTO = {"ws": "tcp", "wss": "tls"}

#: RecvInfos of handed-over replies kept (one per connection another worker holds)
MAX_HANDED_RCV = 1024
#: owners of connections other workers hold, remembered here (emptied when full)
MAX_OWNERS_KEPT = 4096

#: How long connecting to a next hop may take (s).
CONNECT_TIMEOUT = 10.0


class WorkerEndpoints:
    """The sockets of one worker; implements the core's Transport protocol."""

    def __init__(self, loop: asyncio.AbstractEventLoop, listens: list[ListenAddr],
                 receiver: Receiver, limits: ParseLimits, shared: bool,
                 tcp_max_connections: int = 2048, tcp_idle_timeout: float = 120.0,
                 tcp_read_timeout: float = 20.0, tcp_first_data_timeout: float = 20.0,
                 tls: TlsService | None = None, http: HttpService | None = None,
                 rank: int = 0, owners: SharedTable | None = None,
                 sockets: RankSockets | None = None, workers: int = 1,
                 to_main: bool = False) -> None:
        self.loop = loop
        self.listens = listens
        #: local_address's answers by transport (the listens do not change once it runs)
        self._local_of: dict[str, tuple[str, int]] = {}
        self.receiver = receiver
        self.limits = limits
        self.shared = shared  # several workers: reuse ports, hand replies to their workers
        self.udp: dict[tuple[str, int], UdpSocket] = {}
        #: the sends all these UDP sockets hold while a read-ahead event is routed
        self.outbox = Outbox()
        #: where a UDP send leaves from when no socket is named (``forwarding.targets.
        #: send_local`` names one for a relayed request): the first UDP listen socket (the name
        #: the compiled ``udp_out`` reads)
        self.own_udp: UdpSocket | None = None
        #: the rank's UDP sockets made by the main process (None: bind them here, fork=no)
        self.sockets = sockets
        self.stream_servers: list[asyncio.AbstractServer] = []
        #: stream connections by peer address (accepted or opened), whatever their protocol
        self.conns = ConnTable()
        self.counters: dict[str, int] = {}
        self.tcp_max_connections = tcp_max_connections
        #: tcp_connection_lifetime: a connection idle this long (s) is closed.
        self.tcp_idle_timeout = tcp_idle_timeout
        #: tcp_msg_read_timeout: a message must arrive whole this long (s) after its first byte.
        self.tcp_read_timeout = tcp_read_timeout
        #: tcp_msg_data_timeout: a new connection must bring a message within this time (s).
        self.tcp_first_data_timeout = tcp_first_data_timeout
        #: the tls module's contexts (None: tls not loaded, TLS listeners refused at start)
        self.tls = tls
        #: the xhttp module (None: HTTP requests are not taken from SIP connections)
        self.http = http
        #: idle lifetime by protocol when it is not tcp_connection_lifetime (modules set it)
        self.idle_timeouts: dict[str, float] = {}
        #: several workers: who holds which stream connection, and this worker's mailbox for
        #: what the others hand over (kemi_core.transport.handoff)
        self.rank = rank
        #: the workers' ranks run 1..workers (where a shared socket hands back what it read)
        self.workers = workers
        self.owners = owners
        #: the main process takes replies to what it sends: a mailbox even for one worker
        self.to_main = to_main
        self.mailbox: Mailbox | None = None
        #: the owners table's answers that named another worker, by owner key: a send does
        #: not read the table (a transaction, an unpickle) each time. They are forgotten
        #: when a worker records or forgets a connection (``owners_seen`` moved); one
        #: read just before such a change is found out when its worker hands the send back
        #: (F), then dropped and read again
        self._owner_of: dict[str, int] = {}
        self._owners_seen = -1
        #: the RecvInfo of replies handed over to us, by their hand-over's fields
        self._handed_rcv: dict[tuple[str, ...], RecvInfo] = {}
        #: sends handed over in a row in one datagram, by the connection they go on (written
        #: together once the row ends): each with its hand-over's fields
        self._corked: dict[StreamConnection, list[tuple[list[str], bytes]]] = {}
        #: told of a message send() took but that could not go out after all (the core's
        #: ``send_failed_later``: tm fails the branch)
        self.on_send_failed: Callable[[bytes], None] | None = None
        self.limited_log = RateLimitedLog(log)
        #: the expiry sweep is armed (only while connections are open)
        self.sweeping = False
        if udp_out is not None:  # compiled: the usual UDP send in one call, send() the rest
            self.send = functools.partial(  # type: ignore[method-assign]
                udp_out, self, self.send, held_sends)

    def warn_limited(self, counter: str, fmt: str, *args: object) -> None:
        """Count a refused connection or bad stream; log it at most once a second."""
        self.counters[counter] = self.counters.get(counter, 0) + 1
        self.limited_log.warning(counter, fmt, *args)

    def idle_timeout(self, conn: StreamConnection) -> float:
        return self.idle_timeouts.get(conn.proto, self.tcp_idle_timeout)

    def close_expired(self) -> int:
        """Close connections that are idle, silent since they opened, trickling a message too
        slowly or stuck in their TLS handshake; returns how many. Readers get their tick
        (WebSocket keepalives)."""
        now = self.loop.time()
        closed = 0
        for conn in self.conns.values():
            why = conn.expired(now)
            if why is not None and conn.transport is not None:
                log.debug("%s %s:%s: %s; closing", conn.proto, *conn.peer, why)
                conn.abort()
                closed += 1
            elif conn.transport is not None:
                conn.reader.tick(conn, now)
        return closed

    #: the name the tests and the nathelper module know
    close_expired_tcp = close_expired

    def _sweep_period(self) -> float:
        limits = [self.tcp_idle_timeout, self.tcp_read_timeout, self.tcp_first_data_timeout,
                  10.0, *self.idle_timeouts.values()]
        if self.tls is not None:
            limits.append(self.tls.handshake_timeout)
        return max(0.1, min(limits) / 4)

    def _idle_sweep(self) -> None:
        self.sweeping = False
        self.close_expired()
        self.sweep_tcp()

    def sweep_tcp(self) -> None:
        """Look for expired connections while there are connections (an idle worker without
        any is not woken for it)."""
        if not self.sweeping and self.conns:
            self.sweeping = True
            self.loop.call_later(self._sweep_period(), self._idle_sweep)

    async def start(self, udp: bool = True) -> None:
        """Open the sockets; with ``udp`` False, all but UDP (``open_udp`` then)."""
        if self.owners is not None or (self.shared and self.workers > 1) or self.to_main:
            try:
                self.mailbox = Mailbox(main_pid(), self.rank, self.loop, self._handover_lost)
            except OSError as exc:  # (a name taken: not our server's worker of that rank)
                log.warning("worker %d: no mailbox (%s): replies reaching this worker for "
                            "another are handled here", self.rank, exc)
        box = self.mailbox
        if box is not None:
            self.loop.add_reader(box.sock.fileno(), box.drain, self._handed_over,
                                 self._uncork)
        for lst in self.listens:
            if lst.proto in ("tcp", "tls"):
                await self._listen_stream(lst)
            elif lst.proto != "udp":
                log.warning("listen %s:%s:%s: protocol not supported, skipped", lst.proto, lst.host, lst.port)
        if udp:
            self.open_udp()

    def open_udp(self) -> None:
        """Start reading the UDP sockets. Sockets the main process kept may hold datagrams
        already (they came while the rank had no worker): a worker opens them last, once
        everything that routes a message is in place, outside any loop turn."""
        for lst in self.listens:
            if lst.proto == "udp":
                sock = self._udp_socket(lst.host, lst.port)
                self.udp[(lst.host, lst.port)] = UdpSocket(self.loop, sock, self.receiver,
                                                           self.limits, lst.host, lst.port,
                                                           self.outbox)
        self.own_udp = next(iter(self.udp.values()), None)
        # every socket reads an event's datagrams ahead; a shared listen socket closed inside
        # an event (the worker's last turn) hands the rest back
        for tr in self.udp.values():
            tr.start_read_ahead()
            if self.shared:
                tr.hand_back = self._hand_back_unread

    def _hand_back_unread(self, got: list[tuple[bytes, RecvInfo]]) -> None:
        """Datagrams a shared listen socket read but did not deliver (closed inside their
        event): each to another worker's mailbox, as a reply steered there goes (``R``, with
        the RecvInfo it arrived with); one no other worker takes is delivered here."""
        box = self.mailbox
        others = self._others()
        for data, rcv in got:
            packet = encode_received(rcv, data)
            if box is not None and any(box.post(rank, packet) for rank in others):
                continue
            try:
                deliver_datagram(self.receiver, data, rcv, self.limits)
            except Exception as exc:  # the dispatcher guards; the last line of defence
                internal_error(exc, f"udp from {rcv.src_ip}:{rcv.src_port}")

    def _udp_socket(self, host: str, port: int) -> socket.socket:
        """The rank's socket on a listen address, else a new one."""
        made = self.sockets
        if made is not None:
            sock = made.listen.get((host, port))
            if sock is not None:
                return sock
        return bind_udp(host, port, self.shared)

    async def _listen_stream(self, lst: ListenAddr) -> None:
        if lst.proto == "tls" and self.tls is None:
            log.error("listen tls:%s:%s: the tls module is not loaded (loadmodule \"tls.so\" "
                      "and enable_tls=yes); skipped", lst.host, lst.port)
            return
        sock = bind_tcp(lst.host, lst.port, self.shared)
        local = (lst.host, lst.port)
        tls = self.tls

        def accept() -> StreamConnection:
            if lst.proto == "tls" and tls is not None:
                return StreamConnection(self, local, "tls", tls.server_context(local))
            return StreamConnection(self, local, "tcp")

        self.stream_servers.append(await self.loop.create_server(accept, sock=sock))

    # ---- Transport protocol (kemi_core.runtime.core) -----------------------------------
    def local_address(self, proto: str) -> tuple[str, int]:
        known = self._local_of.get(proto)  # every Via we add asks: kept per transport
        if known is not None:
            return known
        listen = LISTEN_PROTO.get(proto, proto)
        for lst in self.listens:
            if lst.proto == listen:
                known = self._local_of[proto] = (lst.host, lst.port)
                return known
        lst = self.listens[0]
        return (lst.host, lst.port)

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        """Send ``data`` to host:port over ``proto`` (from ``local`` when it is ours); False
        when it cannot go. Compiled, ``_fast.udp_out`` does the usual UDP send (a bytes
        datagram within limits to a numeric address on a socket with nothing queued: sent, or
        held as ``UdpSocket.sendto`` holds it) and calls this for every other one."""
        if proto == "udp":
            tr = self.udp.get(local) if local is not None else None
            if tr is None:
                tr = self.own_udp
                if tr is None:
                    return False
            if len(data) > MAX_UDP4_PAYLOAD:  # (what fits over IPv4 fits over IPv6)
                limit = MAX_UDP6_PAYLOAD if ":" in host else MAX_UDP4_PAYLOAD
                if len(data) > limit:
                    # The kernel would refuse it later, where nobody hears (error_received):
                    # say so now, so the caller (tm) answers at once instead of waiting for a
                    # timeout.
                    self.warn_limited("udp_too_large", "udp: %d bytes to %s:%s do not fit in "
                                      "a UDP datagram (at most %d): not sent", len(data), host,
                                      port, limit)
                    return False
            tr.sendto(data, (host, port))
            return True
        family = STREAM_FAMILY.get(proto)
        if family is None:
            log.error("send over %s is not supported", proto)
            return False
        # each transport of the family in turn (ws then wss for ws): ours, else the worker
        # holding one; a wss connection in another worker comes before our ws one from the
        # same source port
        conns = self.conns
        for each in family:
            conn = conns.newest(host, port, each)
            if conn is not None:
                st = conn.transport
                if st is not None and not st.is_closing():  # conn.open, written out
                    return conn.send_message(data)
                if st is None and not conn.server_side and not conn.opened_at:
                    conn.waiting.append(data)  # still connecting
                    return True
            if self.owners is not None and self.mailbox is not None:  # workers hand over
                key = owner_key(host, port, each)
                if owners_seen.value != self._owners_seen:  # the table changed: read it
                    self._owners_seen = owners_seen.value
                    self._owner_of.clear()
                rank = self._owner_of.get(key)
                if rank is None:
                    rank = self._read_owner(key)
                if rank is not None:
                    return self.mailbox.post(rank, encode_send(self.rank, proto, host, port,
                                                               data))
        return self._send_unheld(proto, host, port, data)

    def _read_owner(self, key: str) -> int | None:
        """The worker the owners table names for ``key`` when it is another one (kept)."""
        assert self.owners is not None
        rank = self.owners.get(key)
        if rank is None or rank == self.rank:
            return None
        kept = self._owner_of
        if len(kept) >= MAX_OWNERS_KEPT:
            kept.clear()
        kept[key] = rank
        return int(rank)

    def _send_unheld(self, proto: str, host: str, port: int, data: bytes) -> bool:
        """Send on a connection no worker holds: a new one (TCP, TLS)."""
        if proto in ("ws", "wss"):
            # WebSocket clients connect to us; a connection that is gone cannot be reopened
            self.warn_limited("ws_gone", "%s: no connection to %s:%s (closed?): not sent",
                              proto, host, port)
            return False
        return self._connect(proto, host, port, data)

    # ---- connections held by other workers (kemi_core.transport.handoff) ------------------
    def stream_opened(self, conn: StreamConnection) -> None:
        if self.owners is not None:
            self.owners.put(owner_key(*conn.peer, conn.proto), self.rank)
            owners_changed()

    def stream_closed(self, conn: StreamConnection) -> None:
        if self.owners is not None:
            key = owner_key(*conn.peer, conn.proto)
            try:
                if self.owners.get(key) == self.rank:
                    self.owners.delete(key)
                    owners_changed()
            except Exception as exc:  # the store may be gone at shutdown
                log.debug("forgetting connection %s: %s", key, exc)

    def steer_reply(self, msg: SipMsg, rcv: RecvInfo) -> bool:
        """A reply to a request another worker sent (its branch's rank mark names it; it came
        on a connection we hold, or on a shared UDP port the kernel did not steer): hand it
        to that worker (True), whose transaction takes it as if it had arrived there. False:
        handled here (no mark, ours, or that worker is not there)."""
        try:
            rank = branch_rank(msg.via.branch)
        except SipParseError:
            return False
        if rank is None or rank == self.rank or self.mailbox is None:
            return False
        return self.mailbox.post(rank, encode_received(rcv, msg.to_bytes()))

    def hand_to_another(self, msg: SipMsg, rcv: RecvInfo) -> bool:
        """A new request reaching this worker while it drains to be recycled: to the next
        worker that takes it (True), as if it had arrived there (the replies to what this
        worker sent keep arriving on its sockets, so it still reads them)."""
        box = self.mailbox
        if box is None:
            return False
        packet = encode_received(rcv, msg.to_bytes())
        return any(box.post(rank, packet) for rank in self._others())

    def _others(self) -> list[int]:
        return [*range(self.rank + 1, self.workers + 1), *range(1, self.rank)]

    def _handed_over(self, packet: bytes) -> None:
        found = decode(packet)
        if found is None:
            log.warning("worker mailbox: a malformed hand-over was dropped")
            return
        kind, fields, data = found
        if kind == "S":
            proto, host, port = fields[1], fields[2], int(fields[3])
            conn = self.conns.find(host, port, STREAM_FAMILY.get(proto, (proto,)))
            if conn is not None and conn.open:
                # written with the sends handed over after it in the same datagram
                corked = self._corked.get(conn)
                if corked is None:
                    self._corked[conn] = [(fields, data)]
                else:
                    corked.append((fields, data))
                return
            if fields[0] == MAIN_SENDER:  # the main process's (a keepalive): sent as ours
                self._send_for_main(proto, host, port, data)
                return
            self._hand_back(fields, data)
            return
        if self._corked:  # what the sends before it made goes first
            self._uncork()
        if kind == "F":
            self._handed_back(fields[0], fields[1], int(fields[2]), data)
            return
        # a reply steered here from the worker holding its connection: the RecvInfo of that
        # connection, made once (frozen: one serves all its replies, as a stream's own does)
        key = tuple(fields)
        rcv = self._handed_rcv.get(key)
        if rcv is None:
            if len(self._handed_rcv) >= MAX_HANDED_RCV:
                self._handed_rcv.clear()
            rcv = self._handed_rcv[key] = RecvInfo(fields[0], fields[1], int(fields[2]),
                                                   fields[3], int(fields[4]))
        deliver_datagram(self.receiver, data, rcv, self.limits)

    def _uncork(self) -> None:
        """Write the sends handed over in a row, one write per connection."""
        corked = self._corked
        while corked:
            conn, sends = corked.popitem()
            if not conn.send_messages([data for _, data in sends]):
                for fields, data in sends:
                    self._hand_back(fields, data)

    def _hand_back(self, fields: list[str], data: bytes) -> None:
        """A send handed over for a connection that is gone since the sender looked it up:
        back to the sender, who tries as for a connection nobody holds and tells its
        transaction when that fails too."""
        proto, host, port = fields[1], fields[2], int(fields[3])
        if fields[0] == MAIN_SENDER:  # the connection broke under it: a new one
            self._send_for_main(proto, host, port, data)
            return
        if self.mailbox is None or not self.mailbox.post(
                int(fields[0]), encode_failed(proto, host, port, data)):
            self.warn_limited("handoff_gone", "%s to %s:%s: the connection is gone; not "
                              "sent", proto, host, port)

    def _send_for_main(self, proto: str, host: str, port: int, data: bytes) -> None:
        """Send what the main process handed over (it has no stream connections): on ours,
        the owner's, or a new one; the main process's transaction times out if it fails."""
        if not self.send(proto, host, port, data):
            self.warn_limited("main_send_failed", "%s to %s:%s for the main process: not "
                              "sent", proto, host, port)

    def _handover_lost(self, packet: bytes) -> None:
        """A hand-over the mailbox took could not reach its worker (gone since): a send is
        tried again (its connections went with it)."""
        found = decode(packet)
        if found is not None and found[0] == "S":
            fields = found[1]
            self._handed_back(fields[1], fields[2], int(fields[3]), found[2])

    def _handed_back(self, proto: str, host: str, port: int, data: bytes) -> None:
        """A send the worker we handed it to could not make: when we had its owner kept and
        the table names another one now (a reconnect), the send goes again from the top;
        else as for a connection nobody holds, and the transaction hears when that fails."""
        kept = self._owner_of
        for each in STREAM_FAMILY.get(proto, (proto,)):
            key = owner_key(host, port, each)
            stale = kept.pop(key, None)
            if stale is not None and self.owners is not None:
                now = self.owners.get(key)
                if now != stale and (now is not None or self.conns.newest(host, port, each)):
                    if not self.send(proto, host, port, data):
                        self.send_failed(data)
                    return
        if not self._send_unheld(proto, host, port, data):
            self.send_failed(data)

    def send_failed(self, data: bytes) -> None:
        """A message send() took could not go out after all."""
        if self.on_send_failed is not None:
            self.on_send_failed(data)

    def connection(self, host: str, port: int,
                   local: tuple[str, int] | None = None) -> StreamConnection | None:
        """The stream connection with that peer address (on our address ``local`` when
        given), if one is open."""
        conn = self.conns.find(host, port, local=local)
        return conn if conn is not None and conn.open else None

    def _connect(self, proto: str, host: str, port: int, data: bytes) -> bool:
        """Open a connection to a next hop (TLS: with the tls module's client profile); the
        message goes once it is established. False when the connect fails at once (a refused
        port on this host): the caller (tm) fails now, as Kamailio's first send does."""
        ctx = sni = None
        if proto == "tls":
            if self.tls is None:
                self.warn_limited("tls_missing", "tls: the tls module is not loaded: no "
                                  "message to %s:%s", host, port)
                return False
            ctx, sni = self.tls.client_context((host, port))
        local = self._source_for(proto)
        sock = self._start_connect(proto, host, port, local)
        if sock is None:
            return False
        conn = StreamConnection(self, ("", 0), proto, ctx, server_side=False,
                                server_hostname=sni)
        conn.waiting.append(data)
        conn.peer = (host, port)
        self.conns.add(conn)  # later sends queue on it until it is up
        self.loop.create_task(self._open(conn, sock, host, port))
        return True

    def _start_connect(self, proto: str, host: str, port: int,
                       local: tuple[str, int] | None) -> socket.socket | None:
        """A non-blocking socket whose connect to ``host:port`` is under way or done; None
        when it failed at once (logged). A refused port on this host is known right after
        connect(): a poll that does not wait says so."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if local is not None:
                sock.bind(local)
            err = sock.connect_ex((host.strip("[]"), port))
            if err == errno.EINPROGRESS and _writable_now(sock):
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            err = exc.errno or errno.EIO
        if err in (0, errno.EINPROGRESS):
            return sock
        sock.close()
        self.warn_limited("tcp_connect_failed", "%s connect to %s:%s failed: %s", proto, host,
                          port, os.strerror(err))
        return None

    def _source_for(self, proto: str) -> tuple[str, int] | None:
        for lst in self.listens:
            if lst.proto == proto and lst.host not in ("0.0.0.0", "::"):
                return (lst.host.strip("[]"), 0)
        return None

    async def _open(self, conn: StreamConnection, sock: socket.socket, host: str,
                    port: int) -> None:
        try:
            await asyncio.wait_for(self._connected(sock), CONNECT_TIMEOUT)
            await self.loop.create_connection(lambda: conn, sock=sock)
        except (TimeoutError, OSError) as exc:
            sock.close()
            self.warn_limited("tcp_connect_failed", "%s connect to %s:%s failed: %s",
                              conn.proto, host, port, exc)
            self.conns.remove(conn)
            conn.waiting.clear()
            return
        if conn.tls is None:  # plain TCP: up now (TLS sends once its handshake is done)
            waiting, conn.waiting = conn.waiting, []
            for data in waiting:
                conn.send_message(data)

    async def _connected(self, sock: socket.socket) -> None:
        """Wait until the connect under way on ``sock`` is done; OSError when it failed."""
        loop = self.loop
        done = loop.create_future()
        fd = sock.fileno()

        def ready() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_writer(fd, ready)
        try:
            await done
        finally:
            loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))

    def stop_accepting(self) -> None:
        """Accept no new stream connections (open ones stay for the transactions in progress).
        The UDP listen sockets stay: the replies to this worker's transactions arrive there."""
        for server in self.stream_servers:
            server.close()
        self.stream_servers.clear()

    def close(self) -> None:
        if self.mailbox is not None:
            self.loop.remove_reader(self.mailbox.sock.fileno())
            self.mailbox.close()
        for tr in self.udp.values():
            tr.close()
        for server in self.stream_servers:
            server.close()
        for conn in self.conns.values():
            conn.close()


def _writable_now(sock: socket.socket) -> bool:
    """Whether ``sock`` is writable (its connect finished, well or not) without waiting."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))
