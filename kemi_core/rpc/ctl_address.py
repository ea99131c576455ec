"""Control socket addresses as ctl's ``binrpc`` parameter writes them.

``unix:/path``, ``unixs:/path`` and a bare ``/path`` are unix stream sockets; ``unixd:/path`` a
unix datagram socket; ``tcp:host:port``, ``tcp:port``, ``udp:host:port`` (``*`` or no host: all
addresses) network sockets; ``host:port`` without a protocol is UDP, as in Kamailio.
"""

from __future__ import annotations

import attrs

STREAM_UNIX = ("unix", "unixs")


@attrs.frozen
class CtlAddress:
    proto: str  # "unix" (stream), "unixd", "tcp" or "udp"
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.proto in ("unix", "unixd")

    def __str__(self) -> str:
        if self.is_unix:
            return f"{self.proto}:{self.path}"
        return f"{self.proto}:{self.host}:{self.port}"


def parse_ctl_address(spec: str) -> CtlAddress:
    """ValueError (saying why) for a form ctl does not know."""
    proto, sep, rest = spec.partition(":")
    if not sep:
        if spec.startswith("/"):
            return CtlAddress("unix", path=spec)
        raise ValueError(f"control socket {spec!r}: expected unix:/path, tcp:host:port or udp:host:port")
    if proto in STREAM_UNIX or proto == "unixd":
        if not rest:
            raise ValueError(f"control socket {spec!r}: no path")
        return CtlAddress("unix" if proto in STREAM_UNIX else "unixd", path=rest)
    if proto not in ("tcp", "udp"):
        proto, rest = "udp", spec  # "host:port"
    host, _, port_text = rest.rpartition(":")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"control socket {spec!r}: bad port {port_text!r}")
    host = host.strip("[]")
    if host in ("", "*"):
        host = "0.0.0.0"
    return CtlAddress(proto, host=host, port=int(port_text))
