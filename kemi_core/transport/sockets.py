"""Socket creation shared by the endpoints: address families and SO_REUSEPORT."""

from __future__ import annotations

import socket


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking UDP socket; with ``reuse_port`` several workers share the port."""
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Room for bursts: a SIPp load test sends faster than one Python worker reads.
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        except OSError:
            pass
    sock.bind((host.strip("[]"), port))
    sock.setblocking(False)
    return sock


def bind_tcp(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(512)
    sock.setblocking(False)
    return sock
