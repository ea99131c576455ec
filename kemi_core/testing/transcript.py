"""What UAs on 127.0.0.1 receive from a server, as a transcript to compare kemi with Kamailio.

``Transcript(server_port)`` collects every datagram the ``Ua``s built on it receive, in the
order the test reads them, each reduced to what two servers may be compared by: the first line
and the headers (their values with the server's and each UA's port named, ``branch``, tag,
Call-ID and nonce values numbered in order of appearance, Date/Server/User-Agent left out), and
a body by its length. Two runs of the same flow against kemi and against Kamailio give equal
``lines`` when the servers behaved the same on the wire.

Not compared: where and when ``;received`` and ``;rport=`` are stamped on a Via (the order of
a Via's parameters, ``received``/``rport`` values): those are
tests/e2e/test_via_stamps_vs_kamailio.py's. The Via a forwarding server adds is compared whole
but for its branch, whatever the number of workers (Kamailio's example runs two).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from kemi_core.sip import SipMsg, parse_datagram

_DROPPED = frozenset(("date", "server", "user-agent"))
_BRANCH = re.compile(r"branch=z9hG4bK[^;,\s>]*")
_TAG = re.compile(r"tag=([^;,\s>]+)")
_NONCE = re.compile(r'(nonce|opaque)="[^"]*"')
_EXPIRES = re.compile(r"(expires=|Expires: )(\d+)")
_VIA_STAMPS = re.compile(r";(received=[^;,\s]*|rport=\d+)")

Check = Callable[[bytes], bool]


class Transcript:
    """The normalised datagrams the UAs of one flow received (``lines``), with ``note``s."""

    def __init__(self, server_port: int) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {server_port: "SRV"}
        self._ids: dict[str, str] = {}

    def note(self, text: str) -> None:
        self.lines.append(f"## {text}")

    def add(self, who: str, data: bytes) -> None:
        self.lines.append(f"-> {who}: {self.reduce(data)}")

    def _id(self, kind: str, value: str) -> str:
        """A stable name for a generated value: its kind and its rank of appearance."""
        key = f"{kind}:{value}"
        if key not in self._ids:
            self._ids[key] = f"{kind}{sum(k.startswith(kind + ':') for k in self._ids)}"
        return self._ids[key]

    def reduce(self, data: bytes) -> str:
        head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
        lines = [x for x in head.split("\r\n")
                 if x.split(":", 1)[0].strip().lower() not in _DROPPED]
        for i, line in enumerate(lines):
            if not line.startswith("Via:"):
                continue
            line = _VIA_STAMPS.sub(
                lambda m: ";rport" if m.group(1).startswith("rport") else "", line)
            host, _, params = line.partition(";")
            lines[i] = ";".join([host, *sorted(params.split(";"))]) if params else line
        text = "\n      ".join(lines)
        if body:
            text += f"\n      [body of {len(body.encode())} bytes]"
        for port, name in self.names.items():
            text = re.sub(rf"(?<!\d){port}(?!\d)", name, text)
        text = _BRANCH.sub(lambda m: "branch=" + self._id("B", m.group(0)), text)
        text = _TAG.sub(lambda m: "tag=" + self._id("T", m.group(1)), text)
        text = re.sub(r"Call-ID: (\S+)", lambda m: "Call-ID: " + self._id("C", m.group(1)), text)
        text = _NONCE.sub(lambda m: f'{m.group(1)}="..."', text)
        # what is left of a binding's time, to the nearest 10 s (a second may tick between)
        return _EXPIRES.sub(lambda m: m.group(1) + str(round(int(m.group(2)), -1)), text)


class Ua:
    """A UDP socket on ``host`` (any port) talking to the server at 127.0.0.1:``server_port``;
    what it receives goes to the transcript under ``name``."""

    def __init__(self, name: str, server_port: int, transcript: Transcript,
                 host: str = "127.0.0.1") -> None:
        self.name, self.server_port, self.transcript = name, server_port, transcript
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = host, int(self.sock.getsockname()[1])
        transcript.names[self.port] = name.upper()
        self.peer: tuple[str, int] = ("127.0.0.1", server_port)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: str | bytes, to: tuple[str, int] | None = None) -> bytes:
        """Send ``data`` (``PORT``: this UA's port, ``HOST``: its address) to the server."""
        raw = data.encode() if isinstance(data, str) else data
        raw = raw.replace(b"PORT", str(self.port).encode()).replace(b"HOST", self.host.encode())
        self.sock.sendto(raw, to or ("127.0.0.1", self.server_port))
        return raw

    def answer(self, data: bytes) -> None:
        """Send ``data`` back where the last datagram came from."""
        self.sock.sendto(data, self.peer)

    def wait(self, check: Check, timeout: float = 5.0) -> bytes | None:
        """The first datagram ``check`` accepts; every one received until then is recorded.
        None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, self.peer = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            self.transcript.add(self.name, data)
            if check(data):
                return data
        return None

    def final(self, timeout: float = 5.0) -> bytes | None:
        """The next final reply (the provisional ones before it recorded)."""
        return self.wait(lambda d: d.startswith(b"SIP/2.0 ") and not d.startswith(b"SIP/2.0 1"),
                         timeout)

    def request(self, method: str, timeout: float = 5.0) -> SipMsg | None:
        """The next request of ``method``, parsed."""
        data = self.wait(lambda d: d.startswith(method.encode() + b" "), timeout)
        return None if data is None else parse_datagram(data)

    def quiet(self, timeout: float) -> None:
        """Record whatever comes within ``timeout`` seconds (where a flow expects nothing)."""
        self.wait(lambda d: False, timeout)
