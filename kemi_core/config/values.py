"""Values of kamailio.cfg global parameters: listen and alias addresses."""

from __future__ import annotations

import ipaddress
import re

import attrs

from kemi_core.config.model import Alias, ListenAddr

#: Transports kemi serves; the others Kamailio knows are accepted and skipped with a warning.
SERVED_PROTOS = ("udp", "tcp")
KNOWN_PROTOS = ("udp", "tcp", "tls", "sctp", "ws", "wss")

_WORDS = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s"',])+""")
_HOSTPORT = re.compile(
    r"(?:(?P<proto>[A-Za-z]+):(?=.))?"
    r"(?P<host>\[[^\]]*\]|[^:\[\]]+)"
    r"(?::(?P<port>[^:]*))?"
)
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?\.?")


class AddressError(ValueError):
    """A malformed address; the message is the reason shown with file:line."""


@attrs.define
class HostPort:
    proto: str | None
    host: str
    port: int | None


def _unquote(s: str) -> str:
    return s.replace('"', "").replace("'", "")


def _port(text: str, what: str) -> int:
    if not text.isdigit():
        raise AddressError(f"bad port {text!r} in {what}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise AddressError(f"port {port} out of range (1-65535) in {what}")
    return port


def _host(host: str, what: str) -> str:
    if host.startswith("["):
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner.split("%", 1)[0])
        except ValueError:
            raise AddressError(f"bad IPv6 address {host!r} in {what}") from None
        return inner
    if not _HOSTNAME.fullmatch(host):
        raise AddressError(f"bad host {host!r} in {what}")
    return host


def parse_hostport(word: str, what: str, allow_proto: bool = True) -> HostPort:
    """``[proto:]host[:port]`` with host an IPv4 address, ``[IPv6]``, a name or an interface."""
    text = _unquote(word)
    head, _, tail = text.partition(":")
    rest = tail if head.lower() in KNOWN_PROTOS else text
    if rest.count(":") > 1 and re.fullmatch(r"[0-9A-Fa-f:.%]+", rest):
        raise AddressError(f"IPv6 address needs [brackets] in {what}: {word!r}")
    m = _HOSTPORT.fullmatch(text)
    if m is None:
        raise AddressError(f"bad address {word!r} in {what} (expected [proto:]host[:port])")
    proto = m.group("proto")
    if proto is not None:
        proto = proto.lower()
        if proto not in KNOWN_PROTOS:
            # "host:port" where the host looks like a word, e.g. "localhost:5060"
            if m.group("port") is None and m.group("host").isdigit():
                return HostPort(None, _host(proto, what), _port(m.group("host"), what))
            raise AddressError(f"unknown protocol {proto!r} in {what} (udp, tcp, tls, sctp, ws, wss)")
        if not allow_proto:
            raise AddressError(f"no protocol allowed in {what}: {word!r}")
    port = _port(m.group("port"), what) if m.group("port") is not None else None
    return HostPort(proto, _host(m.group("host"), what), port)


@attrs.define
class ListenSpec:
    """One ``listen=`` value; ``port`` None means "the global ``port``"."""

    protos: tuple[str, ...]  # every transport it opens
    host: str
    port: int | None
    advertise: HostPort | None = None
    name: str | None = None
    virtual: bool = False

    def addrs(self, default_port: int) -> list[ListenAddr]:
        port = self.port if self.port is not None else default_port
        adv_host = self.advertise.host if self.advertise else None
        adv_port = self.advertise.port if self.advertise else None
        return [ListenAddr(p, self.host, port, adv_host, adv_port, self.name, self.virtual)
                for p in self.protos]


def parse_listen(raw: str) -> ListenSpec:
    """``[proto:]host[:port] [advertise host[:port]] [name "x"] [virtual]``."""
    words = _WORDS.findall(raw)
    if not words:
        raise AddressError("listen needs an address")
    hp = parse_hostport(words[0], "listen")
    spec = ListenSpec((hp.proto,) if hp.proto else SERVED_PROTOS, hp.host, hp.port)
    i = 1
    while i < len(words):
        w = words[i]
        if w in ("advertise", "name") and i + 1 >= len(words):
            raise AddressError(f"listen: '{w}' needs a value")
        if w == "advertise":
            spec.advertise = parse_hostport(words[i + 1], "listen advertise", allow_proto=False)
            i += 2
        elif w == "name":
            val = words[i + 1]
            if val[0] not in "\"'" or val[-1] != val[0] or len(val) < 2:
                raise AddressError('listen: name must be a quoted string: name "s1"')
            spec.name = val[1:-1]
            i += 2
        elif w == "virtual":
            spec.virtual = True
            i += 1
        else:
            raise AddressError(f"listen: unexpected {w!r} (expected advertise, name or virtual)")
    return spec


def parse_aliases(raw: str) -> list[Alias]:
    """``alias=[proto:]host[:port]``, several allowed (``alias=a.com:5060 tcp:b.com``)."""
    words = _WORDS.findall(raw)
    if not words:
        raise AddressError("alias needs a host name")
    out = []
    for w in words:
        hp = parse_hostport(w, "alias")
        out.append(Alias(hp.host, hp.port, hp.proto.lower() if hp.proto else None))
    return out
