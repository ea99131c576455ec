"""Socket creation shared by the endpoints: address families and SO_REUSEPORT."""

from __future__ import annotations

import os
import socket

from kemi_core.transport.steer import steer_replies


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_udp(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking UDP socket; with ``reuse_port`` several workers share the port.

    A listen address gets SO_REUSEADDR (as Kamailio's UDP sockets do); a socket on an
    ephemeral port (``port`` 0) does not: on UDP, SO_REUSEADDR lets any later socket with it
    bind the same port and take its datagrams (a media relay on this host binds its ports so,
    in a range that usually overlaps the ephemeral ports)."""
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    if port:
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


class RankSockets:
    """One worker rank's UDP sockets, made by the main process before it forks and kept open
    while the server runs: its SO_REUSEPORT socket on each UDP ``listen`` address, where it
    reads requests and replies and sends from. A worker that replaces another of the same rank
    inherits the very same sockets, so the kernel's reuseport group (which worker each flow
    hashes to, and the socket index the reply steering program names, ``steer``) stays as it
    was, and datagrams that come while the rank has no worker wait in its queues (Kamailio's
    UDP sockets outlive its workers the same way)."""

    __slots__ = ("listen",)

    def __init__(self, listens: list[tuple[str, int]], shared: bool) -> None:
        #: (host, port) of each UDP listen address -> this rank's socket on it
        self.listen = {addr: bind_udp(addr[0], addr[1], shared) for addr in listens}

    def close(self) -> None:
        """Close this process's copies (a worker: the other ranks' sockets it inherited; the
        main process: all of them once the workers are gone)."""
        for sock in self.listen.values():
            sock.close()


def make_rank_sockets(listens: list[tuple[str, int]], workers: int) -> dict[int, RankSockets]:
    """Every rank's sockets, bound in rank order: rank r's socket is index r - 1 of each
    port's reuseport group, where the steering program sends replies naming rank r
    (``KEMI_REPLY_STEERING=off`` leaves it out: every reply goes by the kernel's hash, the
    mailbox brings it to its worker; for tests and measurements)."""
    made = {rank: RankSockets(listens, workers > 1) for rank in range(1, workers + 1)}
    if workers > 1 and listens and os.environ.get("KEMI_REPLY_STEERING", "on") != "off":
        steer_replies(list(made[1].listen.values()))
    return made
