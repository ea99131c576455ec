"""SIP clients for tests: over a plain or TLS stream (``StreamSipClient``) and over WebSocket
(``WsSipClient``, ws:// or wss://, with wsproto as the client side). Blocking sockets, every
wait bounded by a deadline; what arrives is parsed into SipMsg objects.

    with WsSipClient("127.0.0.1", port, tls=ctx) as ua:
        ua.send(register_text)
        reply = ua.expect(lambda m: not m.is_request)
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from kemi_core.sip import SipMsg, StreamBuffer, parse_datagram
from kemi_websocket.webrtc_cfg import Ports, write_server

if TYPE_CHECKING:
    from kemi_tls.testing import Pki


class _Base:
    sock: socket.socket
    received: list[SipMsg]

    def local(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def _read_more(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.01))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise ConnectionError("the server closed the connection")
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        """What the client makes of bytes read (SIP framing, WebSocket frames)."""
        raise NotImplementedError

    def expect(self, match: Callable[[SipMsg], bool] = lambda m: True,
               timeout: float = 5.0) -> SipMsg:
        """The first message received (now or within ``timeout``) that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self.received):
                if match(msg):
                    return self.received.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching SIP message within {timeout} s "
                                   f"(got {self.received})")
            self._read_more(left)

    def reply_to(self, req: SipMsg, code: int, reason: str, extra: str = "",
                 body: str = "") -> None:
        """Send a reply to ``req`` (Via, From, To with a tag, Call-ID, CSeq copied)."""
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in req.headers("via")]
        lines += [f"Record-Route: {v}" for v in req.headers("record-route")]
        lines.append(f"From: {req.header('from')}")
        to = req.header("to") or ""
        if "tag=" not in to:
            to += f";tag=ua{abs(hash(req.call_id)) % 10**8}"
        lines.append(f"To: {to}")
        lines.append(f"Call-ID: {req.call_id}")
        lines.append(f"CSeq: {req.header('cseq')}")
        text = "\r\n".join(lines) + "\r\n" + extra
        self.send(f"{text}Content-Length: {len(body.encode())}\r\n\r\n{body}")

    def send(self, text: str | bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(host: str, port: int, timeout: float, source_port: int = 0) -> socket.socket:
    """A TCP connection from a local port no other socket has (connect() alone may give one
    that another connection to another of the server's ports uses, and Kamailio then confuses
    the two); ``source_port``: from that port, even when another connection uses it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if source_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(timeout)
    sock.bind((host, source_port))
    sock.connect((host, port))
    return sock


class StreamSipClient(_Base):
    """SIP over TCP, or TLS with ``tls`` (an ssl client context)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, timeout: float = 5.0,
                 source_port: int = 0) -> None:
        raw = connect(host, port, timeout, source_port)
        self.sock = tls.wrap_socket(raw, server_hostname=server_hostname) if tls else raw
        self.buffer = StreamBuffer()
        self.received = []

    def send(self, text: str | bytes) -> None:
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def _consume(self, data: bytes) -> None:
        self.received += self.buffer.feed(data)


class WsSipClient(_Base):
    """SIP over WebSocket (subprotocol ``sip``); ``tls`` makes it wss://."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                 path: str = "/", subprotocols: tuple[str, ...] = ("sip",),
                 timeout: float = 5.0, extra_headers: list[tuple[bytes, bytes]] | None = None,
                 source_port: int = 0) -> None:
        raw = connect(host, port, timeout, source_port)
        self.sock = tls.wrap_socket(raw, server_hostname=None) if tls else raw
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.received = []
        self.pings = 0
        self.closed: CloseConnection | None = None
        self._text: list[str] = []
        self.send_raw(self.ws.send(Request(host=f"{host}:{port}", target=path,
                                           subprotocols=list(subprotocols),
                                           extra_headers=extra_headers or [])))
        self.accepted: AcceptConnection | None = None
        self.rejected: RejectConnection | None = None
        self.reject_body = b""
        deadline = time.monotonic() + timeout
        while self.accepted is None and self.rejected is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer to the WebSocket handshake")
            self._read_more(left)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, text: str | bytes) -> None:
        data = text.decode() if isinstance(text, bytes) else text
        self.send_raw(self.ws.send(TextMessage(data=data)))

    def _consume(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = event
            elif isinstance(event, RejectConnection):
                self.rejected = event
            elif isinstance(event, RejectData):
                self.reject_body += event.data
            elif isinstance(event, TextMessage | BytesMessage):
                chunk = event.data if isinstance(event.data, str) else event.data.decode()
                self._text.append(chunk)
                if event.message_finished:
                    self.received.append(parse_datagram("".join(self._text).encode()))
                    self._text = []
            elif isinstance(event, Ping):
                self.pings += 1
                self.send_raw(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = event
                try:
                    self.send_raw(self.ws.send(event.response()))
                except Exception:  # noqa: BLE001 - the state may not allow it any more
                    pass
                raise ConnectionError(f"WebSocket closed: {event.code} {event.reason}")

    def wait_closed(self, timeout: float = 5.0) -> CloseConnection | None:
        """Read until the server closes (a Close frame or the end of the stream)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._read_more(deadline - time.monotonic())
            except (ConnectionError, OSError):
                return self.closed
        raise TimeoutError("the server did not close the WebSocket")


class Ua:
    """A SIP user agent as WebRTC clients behave: an ``.invalid`` host in Via and Contact
    (RFC 7118), reached back only through the connection it opened."""

    def __init__(self, client: _Base, user: str, transport: str, domain: str = "127.0.0.1") -> None:
        self.client = client
        self.user = user
        self.transport = transport  # WS, WSS, TLS, TCP
        self.domain = domain
        self.host = f"{user}{id(self) % 10**6}.invalid"
        self.cseq = 0
        self.call_ids = 0

    def contact(self) -> str:
        t = {"WS": "ws", "WSS": "ws", "TLS": "tls", "TCP": "tcp"}[self.transport]
        return f"<sip:{self.user}@{self.host};transport={t}>"

    def request(self, method: str, ruri: str, to: str, extra: str = "", body: str = "",
                call_id: str | None = None) -> str:
        self.cseq += 1
        self.call_ids += 1
        cid = call_id or f"{self.user}-{self.call_ids}-{id(self)}"
        lines = [f"{method} {ruri} SIP/2.0",
                 f"Via: SIP/2.0/{self.transport} {self.host};branch=z9hG4bK{cid}x{self.cseq}",
                 "Max-Forwards: 70", f"From: <sip:{self.user}@{self.domain}>;tag=f{self.user}",
                 f"To: <{to}>", f"Call-ID: {cid}", f"CSeq: {self.cseq} {method}"]
        text = "\r\n".join(lines) + "\r\n" + extra
        return f"{text}Content-Length: {len(body.encode())}\r\n\r\n{body}"

    def register(self, expires: int = 600, timeout: float = 5.0) -> SipMsg:
        aor = f"sip:{self.user}@{self.domain}"
        self.client.send(self.request("REGISTER", f"sip:{self.domain}", aor,
                                      f"Contact: {self.contact()};expires={expires}\r\n"))
        return self.client.expect(lambda m: not m.is_request, timeout)

    def register_own_address(self, expires: int = 600, timeout: float = 5.0) -> tuple[SipMsg, int]:
        """REGISTER a Contact at this client's own address and port (a TLS/TCP phone that
        could be reached by a new connection, unlike a WebRTC one); the reply and the port."""
        port = self.client.local()[1]
        t = {"WS": "ws", "WSS": "ws", "TLS": "tls", "TCP": "tcp"}[self.transport]
        aor = f"sip:{self.user}@{self.domain}"
        self.client.send(self.request(
            "REGISTER", f"sip:{self.domain}", aor,
            f"Contact: <sip:{self.user}@127.0.0.1:{port};transport={t}>;expires={expires}\r\n"))
        return self.client.expect(lambda m: not m.is_request, timeout), port

    def message(self, to_user: str, text: str, timeout: float = 5.0) -> SipMsg:
        uri = f"sip:{to_user}@{self.domain}"
        self.client.send(self.request("MESSAGE", uri, uri, "Content-Type: text/plain\r\n", text))
        return self.client.expect(lambda m: not m.is_request and m.status >= 200, timeout)

    def answer_call(self, timeout: float = 10.0) -> None:
        """Take an INVITE (answer 200 with SDP), its ACK and the BYE (answer 200)."""
        c = self.client
        invite = c.expect(lambda m: m.is_request and m.method == "INVITE", timeout)
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 40000 RTP/AVP 0\r\n")
        c.reply_to(invite, 200, "OK", f"Contact: {self.contact()}\r\n"
                   "Content-Type: application/sdp\r\n", sdp)
        c.expect(lambda m: m.is_request and m.method == "ACK", timeout)
        bye = c.expect(lambda m: m.is_request and m.method == "BYE", timeout)
        c.reply_to(bye, 200, "OK")


class WebrtcServer:
    """The proxy/registrar running on kemi or Kamailio ("kind"), with its clients."""

    def __init__(self, kind: str, base: Path, children: int = 2, kamailio_mpath: str = "",
                 pki: Pki | None = None, **cfg: Any) -> None:
        from kemi_core.testing import KamailioProcess, KemiProcess, free_port
        from kemi_tls.testing import make_pki

        self.kind = kind
        self.pki = pki or make_pki(base / "pki")
        self.ports = Ports(udp=free_port(), ws=free_port(), tls=free_port())
        self.ctl = base / ("ctl" if kind == "kamailio" else "kemi_ctl")
        mpath = f'mpath="{kamailio_mpath}"' if kind == "kamailio" else ""
        cfg_path = Path(write_server(base, self.ports, self.pki.server_cert,
                                     self.pki.server_key, self.pki.ca, str(self.ctl),
                                     mpath=mpath, children=children, **cfg))
        self.proc: Any = (KamailioProcess(cfg_path, base, f"unix:{self.ctl}")
                          if kind == "kamailio" else KemiProcess(cfg_path, base))

    def __enter__(self) -> WebrtcServer:
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()

    def ws(self, user: str, source_port: int = 0) -> Ua:
        return Ua(WsSipClient("127.0.0.1", self.ports.ws, source_port=source_port), user, "WS")

    def wss(self, user: str, source_port: int = 0) -> Ua:
        return Ua(WsSipClient("127.0.0.1", self.ports.tls, tls=self.pki.client_context(),
                              source_port=source_port),
                  user, "WSS")

    def tls(self, user: str, ctx: ssl.SSLContext | None = None) -> Ua:
        client = StreamSipClient("127.0.0.1", self.ports.tls, tls=ctx or self.pki.client_context())
        return Ua(client, user, "TLS")
