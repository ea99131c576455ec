"""The rtpproxies of ``rtpproxy_sock``: sets of weighted nodes, and talking to one.

A node is reached over UDP (``udp:host:port``, ``udp6:host:port``) with a cookie per command,
a reply awaited ``rtpproxy_tout`` seconds and the command sent again up to ``rtpproxy_retr``
times, or over a unix stream socket (``unix:/path``) with one connection per command. A node
that does not answer (or refuses) is disabled for ``rtpproxy_disable_tout`` seconds, for every
worker at once (the state is in the shared store), then tried again with ``V``. The calls block
the worker for at most tout x retr seconds, as Kamailio's do.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import socket
import time
import zlib
from typing import Any

import attrs

from kemi_core.api import ModuleError, about_to_wait
from kemi_rtpproxy import protocol

log = logging.getLogger("kemi.rtpproxy")


@attrs.define(eq=False)
class Node:
    """One rtpproxy: its URL as configured, where it is, its weight and set."""

    url: str
    proto: str  # "udp", "udp6", "unix"
    address: Any  # (host, port) or a path
    weight: int
    set_id: int
    #: capabilities this process learned with VF (date -> supported)
    caps: dict[str, bool] = attrs.Factory(dict)
    sock: socket.socket | None = None

    @property
    def host(self) -> str | None:
        return None if self.proto == "unix" else str(self.address[0])


def parse_sock_param(value: str, default_set: int = 0) -> list[Node]:
    """One ``rtpproxy_sock`` value: ``[set ==] url[=weight] url ...``."""
    text = value.strip()
    set_id = default_set
    if "==" in text:
        head, _, text = text.partition("==")
        if not head.strip().isdigit():
            raise ModuleError(f"rtpproxy: bad set id in rtpproxy_sock {value!r}")
        set_id = int(head.strip())
    nodes = []
    for item in text.split():
        if item.upper() == "NONE":
            continue
        url, weight = item, 1
        head, eq, tail = item.rpartition("=")
        if eq and tail.isdigit() and not head.endswith("="):
            url, weight = head, int(tail)
        nodes.append(_node(url, weight, set_id))
    return nodes


def _node(url: str, weight: int, set_id: int) -> Node:
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("udp", "udp6", "unix"):
        if colon and scheme not in ("udp", "udp6", "unix"):
            raise ModuleError(f"rtpproxy: unsupported socket {url!r} (udp:, udp6:, unix:)")
        scheme, rest = "unix", url
    if scheme == "unix":
        return Node(url, "unix", rest, weight, set_id)
    host, _, port = rest.rpartition(":")
    if not port.isdigit():
        host, port = rest, "22222"  # rtpproxy's default control port
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    return Node(url, scheme, (host, int(port)), weight, set_id)


class Transport:
    """Sends commands to nodes and reads their replies (one socket per node per process)."""

    def __init__(self, tout: float, retr: int) -> None:
        self.tout = max(tout, 0.05)
        self.retr = max(retr, 1)
        self._seq = itertools.count()

    def command(self, node: Node, command: str) -> str | None:
        """The reply text, or None when the node did not answer (or refused)."""
        about_to_wait()
        try:
            if node.proto == "unix":
                return self._unix(node, command)
            return self._udp(node, command)
        except OSError as exc:
            log.error("can't send command to RTP proxy %s: %s", node.url, exc)
            self.close(node)
            return None

    def _udp(self, node: Node, command: str) -> str | None:
        sock = node.sock
        if sock is None:
            family = socket.AF_INET6 if node.proto == "udp6" else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(node.address)
            node.sock = sock
        _drain(sock)
        cookie = f"{os.getpid()}_{next(self._seq)}"
        data = protocol.with_cookie(cookie, command)
        for _ in range(self.retr):
            sock.send(data)
            deadline = time.monotonic() + self.tout
            while (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                got, text = protocol.split_cookie(sock.recv(65535))
                if got == cookie:
                    return text
        log.error("proxy <%s> does not respond", node.url)
        return None

    def _unix(self, node: Node, command: str) -> str | None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.tout * self.retr)
            sock.connect(str(node.address))
            sock.sendall(command.encode())
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65535):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace").strip()

    @staticmethod
    def close(node: Node) -> None:
        if node.sock is not None:
            node.sock.close()
            node.sock = None


def _drain(sock: socket.socket) -> None:
    """Forget late replies to earlier commands."""
    while True:
        try:
            sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return


def pick(nodes: list[Node], callid: str) -> list[Node]:
    """The set's nodes in the order to try them for a call: the first chosen by the weight
    and the hash of the Call-ID (a call stays on one node), then the others."""
    if len(nodes) <= 1:
        return list(nodes)
    total = sum(max(n.weight, 0) for n in nodes) or len(nodes)
    point = zlib.crc32(callid.encode()) % total
    first = nodes[-1]
    for n in nodes:
        if point < max(n.weight, 0):
            first = n
            break
        point -= max(n.weight, 0)
    return [first, *(n for n in nodes if n is not first)]
