"""ws_handle_handshake(): check an HTTP GET and upgrade its connection to a WebSocket (RFC 6455
section 4.2) for the ``sip`` subprotocol (RFC 7118).

Answers as Kamailio does when something is wrong: 503 while WebSockets are disabled
(``ws.disable``), 400 when a required header is missing or ``sip`` is not among the offered
subprotocols, 426 for another protocol version; the script then sees 0 (stop). wsproto
validates the request and makes the 101.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from kemi_core.api import HttpExchange, MsgContext, http_exchange
from kemi_websocket.session import WsReader

if TYPE_CHECKING:
    from kemi_websocket.service import WebSocketModule

log = logging.getLogger("kemi.websocket")

REQUIRED = ("Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Protocol",
            "Sec-WebSocket-Version")
SUBPROTOCOL = "sip"
_REFUSAL_HEADERS = [("Sec-WebSocket-Protocol", SUBPROTOCOL), ("Sec-WebSocket-Version", "13")]


def _refuse(exchange: HttpExchange, code: int, reason: str, why: str) -> int:
    log.warning("ws_handle_handshake: %s", why)
    exchange.reply(code, reason, "", b"", headers=list(_REFUSAL_HEADERS))
    return 0


def _offered(value: str | None) -> list[str]:
    return [p.strip().lower() for p in (value or "").split(",") if p.strip()]


def handle_handshake(module: WebSocketModule, ctx: MsgContext) -> int:
    """1 when the connection is now a WebSocket; 0 after an error answer."""
    exchange = http_exchange(ctx)
    if exchange is None:
        log.error("ws_handle_handshake: not an HTTP request (call it from the xhttp event)")
        return 0
    if not module.enabled:
        return _refuse(exchange, 503, "Service Unavailable", "WebSockets are disabled")
    msg = exchange.msg
    if msg.method != "GET":
        return _refuse(exchange, 400, "Bad Request", f"{msg.method} is not GET")
    missing = [h for h in REQUIRED if not msg.header(h)]
    if missing:
        return _refuse(exchange, 400, "Bad Request",
                       f"required headers not present: {', '.join(missing)}")
    if "websocket" not in (msg.header("Upgrade") or "").lower() \
            or "upgrade" not in (msg.header("Connection") or "").lower():
        return _refuse(exchange, 400, "Bad Request", "not a WebSocket upgrade request")
    if (msg.header("Sec-WebSocket-Version") or "").strip() != "13":
        return _refuse(exchange, 426, "Upgrade Required", "unsupported WebSocket version")
    if SUBPROTOCOL not in _offered(msg.header("Sec-WebSocket-Protocol")):
        return _refuse(exchange, 400, "Bad Request", "no supported sub-protocol (sip) offered")
    ws = WSConnection(ConnectionType.SERVER)
    try:
        ws.receive_data(msg.to_bytes())
        event = next(iter(ws.events()), None)
    except RemoteProtocolError as exc:
        return _refuse(exchange, 400, "Bad Request", f"bad handshake: {exc}")
    if not isinstance(event, Request):
        return _refuse(exchange, 400, "Bad Request", "bad handshake request")
    extra = [(b"Server", module.server_header.encode())]
    origin = msg.header("Origin")
    if module.cors_mode == 1:
        extra.append((b"Access-Control-Allow-Origin", b"*"))
    elif module.cors_mode == 2 and origin:
        extra.append((b"Access-Control-Allow-Origin", origin.encode()))
    accept = ws.send(AcceptConnection(subprotocol=SUBPROTOCOL, extra_headers=extra))
    conn = exchange.conn
    leftover = exchange.take_over()
    if not conn.write(accept):
        return 0
    reader = WsReader(module, conn, ws, conn.owner.loop.time())
    conn.set_reader(reader, "wss" if conn.proto == "tls" else "ws")
    module.opened(reader, conn)
    if leftover:
        reader.feed(conn, leftover)
    return 1
