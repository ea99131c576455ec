"""Which addresses name this server: Kamailio's "myself" (listen sockets and aliases).

What counts, as Kamailio 5.6 decides it (checked side by side):
- a listen socket: its host (and the address a host name resolves to) or its advertised host,
  with its port or its advertised port, for its transport;
- an ``alias=[proto:]host[:port]``: that host, with that port (any port when none is given), for
  that transport (any when none is given);
- with ``auto_aliases=yes`` (the default), the name an IP address of a listen socket resolves
  back to (``localhost`` for 127.0.0.1), with the socket's port and transport.

A question leaves the port or the transport open with None (or port 0): then any matches. How a
URI becomes a question differs by caller: ``uri == myself`` in native routes fills a missing port
with the default one and ignores the transport (``Myself.cfg_uri``); ``KSR.is_myself*`` and
kex's ``is_myself`` leave a missing port open and keep ``;transport=`` (``Myself.uri_or_host``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

import attrs

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.uri import parse_uri

if TYPE_CHECKING:
    from kemi_core.config.model import CoreConfig
    from kemi_core.sip.uri import SipUri

log = logging.getLogger("kemi.core")


#: WebSocket transports run over the stream sockets: a ws/wss URI is ours on a TCP (or TLS)
#: socket, as Kamailio 5.6 answers.
_SAME_SOCKETS = {"ws": ("ws", "wss", "tcp", "tls"), "wss": ("ws", "wss", "tcp", "tls")}


@attrs.frozen
class OwnName:
    """One host this server answers to; ``port`` / ``proto`` None: any."""

    host: str
    port: int | None
    proto: str | None
    alias: bool = False  # an alias (given or automatic), not a socket's own address


def normalize_host(host: str) -> str:
    """Lower case, no IPv6 brackets, IP addresses in their canonical text (``::0:1`` -> ``::1``)."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h[:1].isdigit() or ":" in h:
        try:
            return str(ipaddress.ip_address(h))
        except ValueError:
            pass
    return h


class Myself:
    """The names of this server and the question Kamailio's check_self answers."""

    def __init__(self, names: list[OwnName]) -> None:
        self.names = names
        self._by_host: dict[str, list[OwnName]] = {}
        for n in names:
            self._by_host.setdefault(n.host, []).append(n)

    def matches(self, host: str, port: int | None = None, proto: str | None = None) -> bool:
        """Whether host[:port] over ``proto`` names this server (None or 0: any)."""
        entries = self._by_host.get(host) or self._by_host.get(normalize_host(host))
        if not entries:
            return False
        protos = _SAME_SOCKETS.get(proto, (proto,)) if proto else None
        for n in entries:
            if (not port or n.port is None or n.port == port) and (
                    protos is None or n.proto is None or n.proto in protos):
                return True
        return False

    def uri(self, uri: SipUri | None) -> bool:
        """KSR.is_myself* and kex's is_myself: the URI's port (any when it has none) and its
        ``;transport=`` (any when it has none)."""
        if uri is None or uri.scheme not in ("sip", "sips") or not uri.host:
            return False
        return self.matches(uri.host, uri.port, uri.transport)

    def cfg_uri(self, uri: SipUri | None) -> bool:
        """``uri == myself`` in native routes: the URI's port, or the default one when it has
        none; the transport is not compared."""
        if uri is None or uri.scheme not in ("sip", "sips") or not uri.host:
            return False
        return self.matches(uri.host, uri.port or default_port(uri))

    def uri_or_host(self, text: str | None) -> bool:
        """KSR.is_myself(text): a ``sip:``/``sips:`` URI (the prefix in lower case, as Kamailio
        checks it) as ``uri()`` does, else the whole text as a host name with any port
        (``127.0.0.1`` is ours, ``127.0.0.1:5060`` is no host name and is not)."""
        text = (text or "").strip()
        if text.startswith(("sip:", "sips:")):
            try:
                return self.uri(parse_uri(text))
            except SipParseError:
                return False
        return bool(text) and self.matches(text)

    def aliases(self) -> list[OwnName]:
        return [n for n in self.names if n.alias]

    @classmethod
    def from_config(cls, cfg: CoreConfig) -> Myself:
        names: list[OwnName] = []
        seen: set[tuple[str, int | None, str | None]] = set()

        def add(host: str, port: int | None, proto: str | None, alias: bool = False) -> None:
            h = normalize_host(host)
            if h and (h, port, proto) not in seen:
                seen.add((h, port, proto))
                names.append(OwnName(h, port, proto, alias))

        for lst in cfg.listen:
            hosts = [lst.host, *_addresses_of(lst.host)]
            if lst.advertise_host:
                hosts.append(lst.advertise_host)
            ports = [lst.port] if lst.advertise_port in (None, lst.port) else [
                lst.port, lst.advertise_port]
            for h in hosts:
                for p in ports:
                    add(h, p, lst.proto)
        for a in cfg.aliases:
            add(a.host, a.port, a.proto, alias=True)
        if cfg.auto_aliases:
            for lst in cfg.listen:
                name = _reverse_name(lst.host)
                if name:
                    add(name, lst.port, lst.proto, alias=True)
        return cls(names)


def default_port(uri: SipUri) -> int:
    """The port ``uri == myself`` assumes when a URI names none: 5061 with ``;transport=tls``,
    else 5060 (a ``sips:`` scheme alone does not change it in Kamailio 5.6)."""
    return 5061 if uri.transport == "tls" else 5060


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _addresses_of(host: str) -> list[str]:
    """The addresses a listen host name stands for (a name in /etc/hosts or the DNS)."""
    if _is_ip(host):
        return []
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def _reverse_name(host: str) -> str | None:
    """The name an IP address resolves back to (auto_aliases), or None."""
    if not _is_ip(host):
        return None
    try:
        name = socket.gethostbyaddr(host.strip("[]"))[0]
    except OSError:
        return None
    return None if _is_ip(name) else name
