"""Stream connections: TCP and TLS, and what modules turn them into (HTTP, WebSocket).

One asyncio protocol per connection. The bytes read go through TLS first when the connection is
TLS (``tlsio``: the worker's loop is never blocked by a handshake), then to the connection's
current **reader**:

* ``SipStreamReader`` (the default): SIP messages framed by Content-Length (``StreamBuffer``).
  On a connection we accepted, a first line that is an HTTP request hands the connection to the
  ``http`` service when a module offers one (xhttp), as Kamailio's TCP reader does.
* a module's reader: xhttp's HTTP reader, then (after ``KSR.websocket.handle_handshake()``)
  the websocket module's, which delivers one SIP message per WebSocket message with proto
  ``ws`` or ``wss``.

A reader delivers through the connection (``deliver`` / ``deliver_bad``), so whatever the
protocol the core gets a parsed message or a parse error with its RecvInfo
(``kemi_core.transport.receiver``). Sending a SIP message goes through the reader too
(``send_message``: a WebSocket frame for a WebSocket connection).

Timeouts (checked by the endpoints' sweep): the TLS handshake must finish within
``handshake_timeout``; a message within ``tcp_msg_data_timeout`` of the connection opening and
whole within ``tcp_msg_read_timeout`` of its first byte; idle connections close after
``tcp_connection_lifetime``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kemi_core.sip import SipMsg, SipParseError, StreamBuffer
from kemi_core.transport import outbox
from kemi_core.transport.receiver import RecvInfo, internal_error
from kemi_core.transport.tlsio import TlsError, TlsSession

if TYPE_CHECKING:
    import ssl

    from kemi_core.runtime.context import MsgContext
    from kemi_core.transport.endpoints import WorkerEndpoints

log = logging.getLogger("kemi.transport")

#: Connection ids, unique across the server's processes (made before the workers fork); the
#: ids ``ws.dump``, ``ws.close`` and ``tls.list`` show.
_NEXT_ID: Any = multiprocessing.Value("q", 0)

#: How much of an accepted connection's first line is read to tell HTTP from SIP.
SNIFF_LIMIT = 2048

#: What a peer may leave unread in our send buffer before the connection is dropped (a peer
#: that never reads must not grow a worker's memory without bound).
MAX_WRITE_BUFFER = 4 * 1024 * 1024


def next_conn_id() -> int:
    with _NEXT_ID.get_lock():
        _NEXT_ID.value += 1
        return int(_NEXT_ID.value)


class StreamReader(Protocol):
    """What makes sense of a connection's plaintext bytes."""

    def feed(self, conn: StreamConnection, data: bytes) -> None:
        """Consume ``data``; deliver what it completed with ``conn.deliver`` (or
        ``conn.deliver_bad``), answer on ``conn.write`` when the protocol wants to."""

    def wire(self, data: bytes) -> bytes:
        """The bytes that carry the SIP message ``data`` on this connection."""

    def pending(self) -> bool:
        """Whether part of a message is buffered (the read timeout runs)."""

    def tick(self, conn: StreamConnection, now: float) -> None:
        """Called by the endpoints' sweep (keepalives)."""

    def lost(self, conn: StreamConnection) -> None:
        """The connection is gone (event routes, bookkeeping)."""


@runtime_checkable
class HttpService(Protocol):
    """The ``http`` service (xhttp): takes over connections whose first line is HTTP."""

    def reader(self, conn: StreamConnection) -> StreamReader: ...


@runtime_checkable
class HttpExchange(Protocol):
    """The HTTP request a script is handling (``ctx.extra["http"]``, set by xhttp): what
    other modules answer it with, or take its connection over with (websocket)."""

    conn: StreamConnection
    msg: SipMsg

    def reply(self, code: int, reason: str, ctype: str, body: bytes, close: bool = False,
              headers: list[tuple[str, str]] | None = None) -> bool:
        """Answer it once (False when answered already)."""

    def take_over(self) -> bytes:
        """No more HTTP on this connection: the bytes received after the request."""


def http_exchange(ctx: MsgContext) -> HttpExchange | None:
    """The HTTP request ``ctx`` is about, when it is one."""
    found = ctx.extra.get("http")
    return found if isinstance(found, HttpExchange) else None


@runtime_checkable
class TlsService(Protocol):
    """The ``tls`` service (the tls module): the SSL context for each connection."""

    handshake_timeout: float

    def server_context(self, local: tuple[str, int]) -> ssl.SSLContext: ...

    def client_context(self, remote: tuple[str, int]) -> tuple[ssl.SSLContext, str | None]:
        """The context and the SNI name to send for a connection to ``remote``."""

    def opened(self, conn: StreamConnection) -> None:
        """A TLS session was established (tls.list bookkeeping)."""

    def closed(self, conn: StreamConnection) -> None: ...


def looks_like_http(first_line: bytes) -> bool:
    """``GET /path HTTP/1.1``: a request line whose version is HTTP."""
    parts = first_line.rstrip(b"\r\n").split(b" ")
    return len(parts) == 3 and parts[2][:7] == b"HTTP/1." and parts[0].isalpha()


class SipStreamReader:
    """SIP messages framed by Content-Length (RFC 3261 18.3)."""

    __slots__ = ("buffer", "sniff")

    def __init__(self, conn: StreamConnection, sniff: bool) -> None:
        self.buffer = StreamBuffer(conn.owner.limits)
        #: an accepted connection whose first line is not read yet (HTTP or SIP?)
        self.sniff = sniff

    def feed(self, conn: StreamConnection, data: bytes) -> None:
        if self.sniff:
            self.sniff = False
            http = conn.owner.http
            if http is not None and self._is_http(conn, data):
                conn.set_reader(http.reader(conn))
                conn.reader.feed(conn, data)
                return
        try:
            msgs = self.buffer.feed(data)
        except SipParseError as exc:
            conn.stream_failed(self.buffer.failed_data, exc)
            return
        for msg in msgs:  # one message failing must not lose those behind it
            conn.deliver(msg)
        error = self.buffer.error
        if error is not None and conn.open:
            # a bad message after good ones: those were delivered, the stream ends here
            conn.stream_failed(self.buffer.failed_data, error)

    def _is_http(self, conn: StreamConnection, data: bytes) -> bool:
        end = data.find(b"\n", 0, SNIFF_LIMIT)
        line = data[:end] if end >= 0 else data[:SNIFF_LIMIT]
        return looks_like_http(line)

    def wire(self, data: bytes) -> bytes:
        return data

    def pending(self) -> bool:
        return self.buffer.pending > 0

    def tick(self, conn: StreamConnection, now: float) -> None:
        pass

    def lost(self, conn: StreamConnection) -> None:
        pass


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection of a worker (accepted or opened by us).

    ``last_active`` moves only when a whole message arrives or we send, so a peer trickling
    bytes cannot keep an idle connection open."""

    def __init__(self, owner: WorkerEndpoints, local: tuple[str, int], proto: str,
                 tls_context: ssl.SSLContext | None = None, server_side: bool = True,
                 server_hostname: str | None = None) -> None:
        self.owner = owner
        self.local = local
        #: "tcp" | "tls", "ws" | "wss" once upgraded
        self.proto = proto
        self.server_side = server_side
        self.conn_id = 0
        self.tls: TlsSession | None = None
        self._tls_context = tls_context
        self._server_hostname = server_hostname
        self.reader: StreamReader = SipStreamReader(self, sniff=server_side)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.last_active = 0.0
        self.opened_at = 0.0
        self.got_message = False
        #: when the bytes of the message being received began arriving (0: none pending)
        self.partial_since = 0.0
        #: SIP messages waiting for the TLS handshake of a connection we opened
        self.waiting: list[bytes] = []
        #: per-connection state modules keep (the websocket module's, the tls module's ...)
        self.extra: dict[str, Any] = {}
        self._rcv: RecvInfo | None = None
        #: writes held while a read's messages are routed, each with its SIP message
        self._held: list[tuple[bytes, bytes | None]] | None = None

    # ---- what the connection is ----------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    @property
    def established(self) -> bool:
        """Ready for SIP: connected, and the TLS handshake (if any) done."""
        return self.transport is not None and (self.tls is None or self.tls.established)

    def rcv(self) -> RecvInfo:
        """The RecvInfo of what arrives on this connection (its protocol may change)."""
        rcv = self._rcv
        if rcv is None or rcv.proto != self.proto:
            rcv = self._rcv = RecvInfo(self.proto, self.peer[0], self.peer[1], self.local[0],
                                       self.local[1])
        return rcv

    def set_reader(self, reader: StreamReader, proto: str | None = None) -> None:
        """Hand the connection to another reader (HTTP, WebSocket); ``proto`` renames the
        transport messages on it arrive by (``ws``/``wss``)."""
        self.reader = reader
        if proto is not None:
            self.proto = proto

    # ---- asyncio ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tr: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = tr
        owner = self.owner
        peer = transport.get_extra_info("peername")
        if not peer:  # reset before we saw it: nothing to talk to
            tr.abort()
            self.transport = None
            return
        self.peer = (peer[0], peer[1])
        self.last_active = self.opened_at = owner.loop.time()
        if len(owner.conns) >= owner.tcp_max_connections:
            # Over the limit (tcp_max_connections): refuse rather than starve the worker.
            owner.warn_limited("tcp_refused", "tcp: %d connections open, refusing %s:%s",
                               len(owner.conns), *self.peer)
            tr.abort()
            self.transport = None
            return
        conns = owner.conns
        if not conns.holds(self):  # accepted (an outgoing one is recorded as it starts)
            old = conns.find(*self.peer, local=self.local)
            if old is not None and old.transport is not None:
                old.transport.abort()  # the same pair of addresses again: the old one is dead
            conns.add(self)
        owner.stream_opened(self)
        owner.sweep_tcp()
        self.conn_id = next_conn_id()
        if self.local[1] == 0:  # outgoing connection: learn our own address
            sockname = transport.get_extra_info("sockname")
            if sockname:
                self.local = (sockname[0], sockname[1])
        tr.set_write_buffer_limits(high=MAX_WRITE_BUFFER)
        if self._tls_context is not None:
            self.tls = TlsSession(self._tls_context, self.server_side, self._server_hostname)
            self._tls_context = None
            if not self.server_side:
                self.tls.start()
                self._flush_tls()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        tls = self.tls
        if tls is not None:
            was = tls.established
            try:
                data = tls.receive(data)
            except TlsError as exc:
                self._flush_tls()
                self.owner.warn_limited("tls_failed", "tls %s:%s: %s; closing", *self.peer,
                                        exc)
                self.abort()
                return
            self._flush_tls()
            if not was and tls.established:
                self._tls_established()
            if tls.peer_closed:  # answer its close_notify with ours, then close
                if data:
                    self.reader.feed(self, data)
                self.close()
                return
            if not data:
                return
        held_writes = _held_writes
        if held_writes.active:  # (not nested: a read's routing does not read)
            self.reader.feed(self, data)
        else:
            held_writes.active = True
            try:
                self.reader.feed(self, data)
            finally:
                held_writes.release()
        if self.transport is None:
            return
        if not self.reader.pending():  # the reader may have handed over (HTTP, WebSocket)
            self.partial_since = 0.0
        elif not self.partial_since:
            self.partial_since = self.owner.loop.time()

    def _tls_established(self) -> None:
        svc = self.owner.tls
        if svc is not None:
            svc.opened(self)
        waiting, self.waiting = self.waiting, []
        for data in waiting:
            self.send_message(data)

    def _flush_tls(self) -> None:
        if self.tls is not None and self.transport is not None:
            out = self.tls.outgoing()
            if out:
                self.transport.write(out)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self.owner
        if owner.conns.remove(self):
            owner.stream_closed(self)
        self.transport = None
        try:
            self.reader.lost(self)
        except Exception as err:  # a module's bookkeeping must not break the loop
            log.error("closing %s:%s: %s", *self.peer, err)
        if self.tls is not None and owner.tls is not None and self.tls.established:
            owner.tls.closed(self)

    # ---- for readers -------------------------------------------------------------------------
    def deliver(self, msg: SipMsg) -> None:
        """A whole SIP message arrived: to the core, with this connection's RecvInfo."""
        owner = self.owner
        self.last_active = owner.loop.time()
        self.got_message = True
        self.partial_since = 0.0
        rcv = self._rcv  # self.rcv()'s usual answer read here: once per message
        if rcv is None or rcv.proto != self.proto:
            rcv = self.rcv()
        try:
            owner.receiver.on_message(msg, rcv)
        except Exception as exc:
            internal_error(exc, f"{self.proto} from {self.peer[0]}:{self.peer[1]}")

    def deliver_bad(self, data: bytes, error: SipParseError) -> None:
        """Bytes that did not parse as a SIP message (the connection stays open)."""
        self.last_active = self.owner.loop.time()
        self.got_message = True
        try:
            self.owner.receiver.on_bad_message(data, self.rcv(), error)
        except Exception as exc:
            internal_error(exc, f"{self.proto} from {self.peer[0]}:{self.peer[1]}")

    def activity(self) -> None:
        """Something that counts as use arrived (an HTTP request, a WebSocket pong)."""
        self.last_active = self.owner.loop.time()
        self.got_message = True

    def stream_failed(self, data: bytes, exc: SipParseError) -> None:
        """The stream cannot be framed any more (RFC 3261 18.3): the receiver hears about the
        bad bytes (it may answer them), then the connection closes once that answer is out."""
        self.owner.warn_limited("parse_errors", "%s %s:%s: unparsable stream (%s); closing",
                                self.proto, *self.peer, exc.reason)
        self.deliver_bad(data, exc)
        self.close()

    # ---- sending -------------------------------------------------------------------------------
    def send_message(self, data: bytes) -> bool:
        """Send one SIP message (framed by the reader: a WebSocket message on a WebSocket)."""
        if self.transport is None:
            return False
        tls = self.tls
        if tls is not None and not tls.established:  # not ``established`` yet
            self.waiting.append(data)
            return True
        return self.write(self.reader.wire(data), data)

    def send_messages(self, messages: list[bytes]) -> bool:
        """Send several SIP messages in one write (a system call and, on TLS, records for
        all of them); False when none went."""
        if len(messages) == 1:
            return self.send_message(messages[0])
        if self.transport is None:
            return False
        tls = self.tls
        if tls is not None and not tls.established:
            self.waiting += messages
            return True
        wire = self.reader.wire
        if _held_writes.active:  # each kept with its message (a failure is told per message)
            return all([self.write(wire(data), data) for data in messages])
        return self.write(b"".join([wire(data) for data in messages]))

    def write(self, data: bytes, message: bytes | None = None) -> bool:
        """Raw bytes of the current protocol (encrypted first on TLS); ``message``: the SIP
        message they carry. While a read's messages are routed, held and written together
        at its end (``HeldWrites``): a write that fails then tells the core of ``message``
        (``send_failed``, as a hand-over that fails does)."""
        tr = self.transport
        if tr is None or tr.is_closing():
            return False
        held_writes = _held_writes
        if held_writes.active:
            held = self._held
            if held is None:
                self._held = [(data, message)]
                held_writes.conns.append(self)
            else:
                held.append((data, message))
            return True
        return self._write_now(data)

    def write_held(self) -> None:
        """Write what was held for this connection, in order, as one write."""
        held, self._held = self._held, None
        if not held:
            return
        data = held[0][0] if len(held) == 1 else b"".join([each for each, _ in held])
        if not self._write_now(data):
            for _, message in held:
                if message is not None:
                    self.owner.send_failed(message)

    def _write_now(self, data: bytes) -> bool:
        tr = self.transport
        if tr is None or tr.is_closing():
            return False
        if tr.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.owner.warn_limited("tcp_stalled", "%s %s:%s does not read what we send; "
                                    "closing", self.proto, *self.peer)
            self.abort()
            return False
        self.last_active = self.owner.loop.time()
        tls = self.tls
        if tls is not None:
            try:
                data = tls.send(data)
            except TlsError as exc:
                log.debug("tls %s:%s: %s", *self.peer, exc)
                self.abort()
                return False
        tr.write(data)
        # a socket the peer has reset fails the write at once: asyncio closes the transport
        return not tr.is_closing()

    def close(self) -> None:
        """Close once what was written is out (a TLS close_notify first)."""
        if self._held:
            self.write_held()
        tr = self.transport
        if tr is None or tr.is_closing():
            return
        if self.tls is not None:
            notify = self.tls.close_notify()
            if notify:
                tr.write(notify)
        tr.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # ---- the sweep ------------------------------------------------------------------------------
    def expired(self, now: float) -> str | None:
        """Why this connection must be closed now, if it must."""
        owner = self.owner
        if self.tls is not None and not self.tls.established:
            limit = owner.tls.handshake_timeout if owner.tls is not None else 10.0
            if now - self.opened_at > limit:
                return "TLS handshake not done in time"
            return None
        if self.partial_since and now - self.partial_since > owner.tcp_read_timeout:
            return "message not complete within tcp_msg_read_timeout"
        if not self.got_message and self.server_side \
                and now - self.opened_at > owner.tcp_first_data_timeout:
            return "no message within tcp_msg_data_timeout"
        if now - self.last_active > owner.idle_timeout(self):
            return "idle for tcp_connection_lifetime"
        return None


class HeldWrites:
    """The stream writes a worker holds while it routes the messages of one read: a read
    bringing several messages (a client's calls come several to a read) answers and relays
    them in one write per connection at its end, a TLS record and a system call for all,
    instead of one each (bench/tls.py's calls, one worker: ~20% less CPU per call). A
    handler about to block writes them first (``outbox.about_to_wait``)."""

    __slots__ = ("active", "conns")

    def __init__(self) -> None:
        self.active = False
        #: the connections holding writes, in the order they first held one
        self.conns: list[StreamConnection] = []

    def release(self) -> None:
        """The read's messages are routed: write what is held; stop holding."""
        self.active = False
        self.flush()

    def flush(self) -> None:
        conns = self.conns
        if conns:
            self.conns = []
            for conn in conns:
                conn.write_held()


_held_writes = HeldWrites()
outbox.held_elsewhere.append(_held_writes.flush)


def connection_of(ctx: MsgContext) -> StreamConnection | None:
    """The stream connection the message of ``ctx`` arrived on (None for UDP, or when it is
    closed already)."""
    if ctx.rcv.proto == "udp":
        return None
    find = getattr(ctx.core.transport, "connection", None)
    if find is None:
        return None
    rcv = ctx.rcv
    conn: StreamConnection | None = find(rcv.src_ip, rcv.src_port, (rcv.dst_ip, rcv.dst_port))
    return conn
