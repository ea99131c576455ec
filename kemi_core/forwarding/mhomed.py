"""mhomed=1: a request relayed over UDP leaves from the UDP listen socket whose address the
kernel would send from to its destination, as Kamailio 5.6 picks it (learnt by running it: of
three UDP listens on 127.0.0.1, the first, whichever the request came in on).

The kernel's choice is asked as Kamailio asks it: a UDP socket connected to the destination
(no datagram sent) names its source address. One socket per address family is kept and
connected again for each relay: the route may change while the server runs.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core

#: address family -> the socket connected to ask for the kernel's source address
_ASKERS: dict[int, socket.socket] = {}


def kernel_source(ip: str) -> str | None:
    """The address the kernel sends from to ``ip``; None when it has no route there."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    asker = _ASKERS.get(family)
    if asker is None:
        asker = _ASKERS[family] = socket.socket(family, socket.SOCK_DGRAM)
    try:
        asker.connect((ip.strip("[]"), 5060))
        return str(asker.getsockname()[0])
    except OSError:
        return None


def mhomed_local(core: Core, host: str) -> tuple[str, int] | None:
    """The first UDP listen socket with the kernel's source address to ``host`` (an address,
    or a name already resolved); None when that is not known or no UDP listen has it."""
    ip = core.resolver.known(host)
    if ip is None:
        return None
    source = kernel_source(ip)
    for lst in core.config.listen:
        if lst.proto == "udp" and lst.host.strip("[]") == source:
            return (lst.host, lst.port)
    return None
