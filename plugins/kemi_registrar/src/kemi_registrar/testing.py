"""Test helpers: a tiny registering UA over UDP, and replies read header by header.

Used by registrar's own tests and by anyone comparing kemi's registrar with Kamailio's: the
same requests go to both servers and ``Reply.normalised()`` hides what legitimately differs
(To-tags, Server, Date, a second of expiry drift).
"""

from __future__ import annotations

import re
import socket
import uuid

import attrs

_EXPIRES = re.compile(r"expires=(\d+)")
#: Headers that differ by design between two servers (or two runs).
VOLATILE = {"via", "from", "call-id", "cseq", "content-length", "server", "date", "user-agent"}


@attrs.frozen
class Reply:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    raw: str

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def normalised(self) -> list[str]:
        """Status line and headers without the volatile ones, To-tag and expires masked."""
        out = [f"{self.status} {self.reason}"]
        for n, v in self.headers:
            if n.lower() in VOLATILE:
                continue
            if n.lower() == "to":
                v = re.sub(r";tag=[^;]*", ";tag=*", v)
            v = _EXPIRES.sub(lambda m: f"expires={_bucket(int(m.group(1)))}", v)
            out.append(f"{n}: {v}")
        return out


def _bucket(seconds: int) -> str:
    """Expiry seconds to the nearest 10 (both servers answer within the same few seconds)."""
    return str(round(seconds / 10) * 10)


def parse_reply(data: bytes) -> Reply:
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    _, code, reason = (lines[0].split(" ", 2) + [""])[:3]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Reply(int(code), reason, tuple(headers), text)


class RegUA:
    """A UA on its own UDP port that REGISTERs and sends requests to one server."""

    def __init__(self, port: int, host: str = "127.0.0.1", domain: str = "127.0.0.1") -> None:
        self.server = (host, port)
        self.domain = domain
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.cseq = 0
        self.callid = uuid.uuid4().hex + "@regua"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RegUA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, user: str, contacts: list[str] | None = None, extra: str = "",
                 cseq: int | None = None, callid: str | None = None, ruri_user: str = "",
                 to: str | None = None, timeout: float = 3.0) -> Reply | None:
        """REGISTER for ``user`` with these Contact values (``None``: this UA's address)."""
        self.cseq = cseq if cseq is not None else self.cseq + 1
        if contacts is None:
            contacts = [f"<sip:{user}@127.0.0.1:{self.port}>"]
        ruri = f"sip:{ruri_user}@{self.domain}" if ruri_user else f"sip:{self.domain}"
        lines = [f"REGISTER {ruri} SIP/2.0", self._via(), f"From: <sip:{user}@{self.domain}>"
                 f";tag=f{self.port}", f"To: {to or f'<sip:{user}@{self.domain}>'}",
                 f"Call-ID: {callid or self.callid}", f"CSeq: {self.cseq} REGISTER",
                 "Max-Forwards: 70", *(f"Contact: {c}" for c in contacts)]
        return self.send("\r\n".join(lines) + "\r\n" + extra + "User-Agent: regua\r\n"
                         "Content-Length: 0\r\n\r\n", timeout)

    def request(self, method: str, user: str, extra: str = "", timeout: float = 3.0,
                callid: str | None = None, ruri: str | None = None) -> Reply | None:
        """``method`` to ``sip:user@domain`` (or to ``ruri`` when given)."""
        lines = [f"{method} {ruri or f'sip:{user}@{self.domain}'} SIP/2.0", self._via(),
                 f"From: <sip:caller@{self.domain}>;tag=r{uuid.uuid4().hex[:8]}",
                 f"To: <sip:{user}@{self.domain}>", f"Call-ID: {callid or uuid.uuid4().hex}",
                 f"CSeq: 1 {method}", "Max-Forwards: 70",
                 f"Contact: <sip:caller@127.0.0.1:{self.port}>"]
        return self.send("\r\n".join(lines) + "\r\n" + extra + "Content-Length: 0\r\n\r\n",
                         timeout)

    def _via(self) -> str:
        return (f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK"
                f"{uuid.uuid4().hex[:12]};rport")

    def send(self, text: str, timeout: float = 3.0) -> Reply | None:
        """Send and return the first final reply (None on timeout)."""
        self.sock.sendto(text.encode(), self.server)
        self.sock.settimeout(timeout)
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return parse_reply(data)


class Capture:
    """A UDP socket standing for a registered phone: records the requests it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def recv(self, timeout: float = 3.0) -> str | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()
