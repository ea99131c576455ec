"""HTTP on a SIP stream connection: h11 frames the requests; each whole request runs the
script's xhttp event with an ``HttpExchange`` the script answers through (``xhttp_reply``) or
hands to another protocol (``KSR.websocket.handle_handshake()``).

One request at a time per connection (HTTP/1.1 keep-alive: the next one is read once the
answer is out); a request whose head or body is larger than ``max_msg_size`` gets 413 and the
connection closes; bytes that are not HTTP get 400 and the connection closes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import h11

from kemi_core.api import MsgContext, RouteType, StreamConnection
from kemi_core.sip import SipMsg, http_request

if TYPE_CHECKING:
    from kemi_core.api import Core

log = logging.getLogger("kemi.xhttp")

SERVER = "kemi"
EVENT = "xhttp:request"


class HttpExchange:
    """One HTTP request being handled: what the script's functions act on (``ctx.extra``)."""

    __slots__ = ("conn", "reader", "request", "msg", "answered", "upgraded")

    def __init__(self, conn: StreamConnection, reader: HttpReader, request: h11.Request,
                 msg: SipMsg) -> None:
        self.conn = conn
        self.reader = reader
        self.request = request
        self.msg = msg
        self.answered = False
        #: a module took the connection over (WebSocket): no more HTTP on it
        self.upgraded = False

    def reply(self, code: int, reason: str, ctype: str, body: bytes, close: bool = False,
              headers: list[tuple[str, str]] | None = None) -> bool:
        """Send the answer (once); ``close``: close the connection after it; ``headers``:
        more header fields (name, value)."""
        if self.answered or self.upgraded:
            return False
        self.answered = True
        headers = [*(headers or []), ("Server", SERVER), ("Content-Length", str(len(body)))]
        if ctype:
            headers.insert(0, ("Content-Type", ctype))
        if close:
            headers.append(("Connection", "close"))
        h = self.reader.h11
        try:
            out = h.send(h11.Response(status_code=code, headers=headers,
                                      reason=reason.encode("utf-8", "replace")))
            out = (out or b"") + (h.send(h11.Data(data=body)) or b"") if body else out
            out = (out or b"") + (h.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            log.error("xhttp_reply %d: %s", code, exc)
            return False
        ok = self.conn.write(out)
        if close or h.our_state is h11.MUST_CLOSE:
            self.conn.close()
        return ok

    def take_over(self) -> bytes:
        """Another protocol takes the connection (a 101 is on its way): the bytes the client
        sent after this request, for the new protocol's reader."""
        self.upgraded = True
        self.answered = True
        data, _closed = self.reader.h11.trailing_data
        return bytes(data)


class HttpReader:
    """The connection's reader while it speaks HTTP."""

    def __init__(self, core: Core, conn: StreamConnection, max_size: int,
                 should_run: Callable[[str], bool], callback: str) -> None:
        self.core = core
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_size)
        self.max_size = max_size
        self.should_run = should_run
        self.callback = callback
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.size = 0

    def feed(self, conn: StreamConnection, data: bytes) -> None:
        h = self.h11
        h.receive_data(data)
        while conn.open and conn.reader is self:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                code = 413 if "size" in str(exc).lower() else (exc.error_status_hint or 400)
                self._fail(conn, code, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self.request, self.body, self.size = event, [], 0
            elif isinstance(event, h11.Data):
                self.size += len(event.data)
                if self.size > self.max_size:
                    self._fail(conn, 413, "Request Entity Too Large")
                    return
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._handle(conn)
            elif isinstance(event, h11.ConnectionClosed):
                conn.close()
                return

    def _fail(self, conn: StreamConnection, code: int, why: str) -> None:
        conn.owner.warn_limited("http_bad", "xhttp %s:%s: %s; closing", *conn.peer, why)
        reason = {400: "Bad Request", 413: "Request Entity Too Large"}.get(code, "Bad Request")
        conn.write(f"HTTP/1.1 {code} {reason}\r\nServer: {SERVER}\r\nContent-Length: 0\r\n"
                   "Connection: close\r\n\r\n".encode())
        conn.close()

    def _handle(self, conn: StreamConnection) -> None:
        req = self.request
        assert req is not None
        conn.activity()
        target = req.target.decode("utf-8", "surrogateescape")
        headers = [(k.decode("latin-1"), v.decode("utf-8", "surrogateescape"))
                   for k, v in req.headers.raw_items()]
        msg = http_request(req.method.decode("ascii", "replace"), target,
                           f"HTTP/{req.http_version.decode('ascii')}", headers, b"".join(self.body))
        exchange = HttpExchange(conn, self, req, msg)
        if not self.should_run(target):
            exchange.reply(404, "Not Found", "", b"")
            return
        ctx = self.core.new_context(msg, conn.rcv(), RouteType.EVENT)
        ctx.extra["http"] = exchange
        rc = self.core.run_event_route(EVENT, ctx, self.callback)
        if rc is None:
            log.error("xhttp: no event_route[xhttp:request] (native) or event_callback (KEMI) "
                      "to handle %s %s", msg.method, target)
        if not exchange.answered and (rc is None or ctx.fault is not None):
            exchange.reply(500, "Server Internal Error", "", b"")

    def wire(self, data: bytes) -> bytes:
        return data

    def pending(self) -> bool:
        return bool(self.h11.trailing_data[0])

    def tick(self, conn: StreamConnection, now: float) -> None:
        pass

    def lost(self, conn: StreamConnection) -> None:
        pass


def exchange_of(ctx: MsgContext) -> HttpExchange | None:
    found = ctx.extra.get("http")
    return found if isinstance(found, HttpExchange) else None


def url_filter(skip: str, match: str) -> Callable[[str], bool]:
    """xhttp's url_skip / url_match: whether the event runs for a URL."""
    skip_re = re.compile(skip) if skip else None
    match_re = re.compile(match) if match else None

    def should_run(url: str) -> bool:
        if skip_re is not None and skip_re.search(url):
            return False
        return match_re is None or match_re.search(url) is not None
    return should_run
