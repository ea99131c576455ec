"""One WebSocket connection carrying SIP (RFC 7118), on wsproto (sans-IO).

The reader takes over a TCP or TLS connection once the handshake (``handshake.py``) accepted
it; the connection's protocol becomes ``ws`` or ``wss``. Each WebSocket message (text or
binary) is one SIP message, parsed and delivered like a datagram; SIP messages we send go out
as text frames (binary when the bytes are not UTF-8).

Limits: a message (its frames together) may be at most ``max_size`` bytes: a frame announcing
more, or fragments adding up to more, close the connection with 1009. A protocol error closes
it with 1002. A close from the peer is answered and the TCP connection closed; so is ours
(``close``) once the peer answers, or at once if it never does (the sweep).

Keepalives: ``keepalive_mechanism`` 1 sends a Ping, 2 an unsolicited Pong, on a connection idle
``keepalive_timeout`` seconds; every frame received counts as use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from kemi_core.api import StreamConnection
from kemi_core.sip import SipParseError, parse_datagram

if TYPE_CHECKING:
    from kemi_websocket.service import WebSocketModule

log = logging.getLogger("kemi.websocket")

#: RFC 6455 7.4.1 close codes
NORMAL = 1000
PROTOCOL_ERROR = 1002
TOO_BIG = 1009

#: keep-alives a client may send inside a WebSocket message (RFC 5626 CRLF)
KEEPALIVES = (b"\r\n", b"\r\n\r\n", b"\n")


class WsReader:
    """The connection's reader once it is a WebSocket."""

    def __init__(self, module: WebSocketModule, conn: StreamConnection, ws: WSConnection,
                 now: float) -> None:
        self.module = module
        self.ws = ws
        self.parts: list[bytes] = []
        self.size = 0
        self.created = now
        self.last_keepalive = now
        self.closing_since = 0.0
        self.conn_id = conn.conn_id

    # ---- receiving -----------------------------------------------------------------------------
    def feed(self, conn: StreamConnection, data: bytes) -> None:
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                if not self._event(conn, event):
                    return
        except RemoteProtocolError as exc:
            conn.owner.warn_limited("ws_bad_frame", "ws %s:%s: %s; closing", *conn.peer, exc)
            self.close(conn, PROTOCOL_ERROR, "Protocol error")

    def _event(self, conn: StreamConnection, event: object) -> bool:
        """Handle one event; False once the connection is closing."""
        if isinstance(event, Message):
            chunk = event.data.encode("utf-8", "surrogateescape") if isinstance(
                event, TextMessage) else bytes(event.data)
            self.size += len(chunk)
            if self.size > self.module.max_size:
                conn.owner.warn_limited("ws_too_big", "ws %s:%s: message over %d bytes; "
                                        "closing", *conn.peer, self.module.max_size)
                self.close(conn, TOO_BIG, "Message too big")
                return False
            self.parts.append(chunk)
            if event.message_finished:
                whole = b"".join(self.parts)
                self.parts, self.size = [], 0
                self._message(conn, whole)
            return conn.open
        if isinstance(event, Ping):
            conn.activity()
            conn.write(self.ws.send(event.response()))
        elif isinstance(event, Pong):
            conn.activity()
        elif isinstance(event, CloseConnection):
            if self.ws.state is not ConnectionState.CLOSED:
                try:
                    conn.write(self.ws.send(event.response()))
                except LocalProtocolError:
                    pass
            conn.close()
            return False
        return True

    def _message(self, conn: StreamConnection, data: bytes) -> None:
        if data in KEEPALIVES:
            conn.activity()
            return
        try:
            msg = parse_datagram(data, conn.owner.limits)
        except SipParseError as exc:
            conn.deliver_bad(data, exc)
            return
        conn.deliver(msg)

    def pending(self) -> bool:
        return bool(self.parts)

    # ---- sending ---------------------------------------------------------------------------------
    def wire(self, data: bytes) -> bytes:
        """A SIP message as one WebSocket message (text when it is UTF-8, as SIP nearly
        always is)."""
        try:
            return self.ws.send(TextMessage(data=data.decode("utf-8")))
        except UnicodeDecodeError:
            return self.ws.send(BytesMessage(data=data))

    def close(self, conn: StreamConnection, code: int = NORMAL, reason: str = "") -> None:
        """Start the closing handshake (the TCP connection closes when the peer answers, or
        at the next sweep after ``CLOSE_WAIT`` seconds)."""
        if self.closing_since or not conn.open:
            return
        self.closing_since = conn.owner.loop.time()
        try:
            conn.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        except LocalProtocolError:
            conn.close()

    def keepalive(self, conn: StreamConnection, mechanism: int) -> None:
        data = self.module.ping_data
        event = Ping(payload=data) if mechanism == 1 else Pong(payload=data)
        try:
            conn.write(self.ws.send(event))
        except LocalProtocolError:
            pass
        self.last_keepalive = conn.owner.loop.time()

    # ---- sweep and end ---------------------------------------------------------------------------
    def tick(self, conn: StreamConnection, now: float) -> None:
        if self.closing_since:
            if now - self.closing_since > self.module.close_wait:
                conn.abort()
            return
        self.module.tick(self, conn, now)

    def lost(self, conn: StreamConnection) -> None:
        self.module.closed(self, conn)
