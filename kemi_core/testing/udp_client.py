"""A minimal SIP-over-UDP/TCP client for tests: send bytes, collect what comes back."""

from __future__ import annotations

import select
import socket
import time
import uuid


def request(method: str, ruri: str, local_port: int, transport: str = "UDP",
            extra: str = "", body: str = "", max_forwards: int | None = 70, cseq: int = 1,
            call_id: str | None = None) -> bytes:
    """A well-formed request from 127.0.0.1:local_port (RFC 3261 8.1.1)."""
    call_id = call_id or uuid.uuid4().hex
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch};rport",
        "From: <sip:tester@127.0.0.1>;tag=t" + uuid.uuid4().hex[:8],
        f"To: <{ruri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:tester@127.0.0.1:{local_port}>",
    ]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    if extra:
        lines += [x for x in extra.split("\r\n") if x]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class UdpClient:
    """A UDP socket on 127.0.0.1 (any port): ``send(data, port)``, ``recv()``, ``recv_final()``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def send(self, data: bytes, port: int, host: str = "127.0.0.1") -> None:
        self.sock.sendto(data, (host, port))

    def recv(self, timeout: float = 3.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data

    def recv_final(self, timeout: float = 5.0) -> bytes | None:
        """Skip provisional replies; the first final reply, or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self.recv(left)
            if data is None:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return data
        return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def readable(sock: socket.socket) -> bool:
    """Whether ``sock`` holds a datagram now (no wait)."""
    return bool(select.select([sock], [], [], 0)[0])


def pending_datagrams(sock: socket.socket, most: int = 10_000) -> list[bytes]:
    """The datagrams ``sock`` holds now, in order, without waiting for more (at most
    ``most``)."""
    got: list[bytes] = []
    while len(got) < most and readable(sock):
        got.append(sock.recv(70_000))
    return got


def tcp_exchange(data: bytes, port: int, timeout: float = 5.0) -> bytes:
    """Send one request over a new TCP connection and read until a final reply arrives."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65535)
            if not chunk:
                break
            buf += chunk
            if b"\r\n\r\n" in buf and not buf.startswith(b"SIP/2.0 1"):
                break
        return buf
