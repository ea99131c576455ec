"""HTTP requests as SipMsg objects (sans-IO).

Kamailio reads HTTP requests that arrive on its SIP listeners with its SIP parser, so a script
handles them with the same tools: ``$rm`` the method, ``$hu`` the URL, ``$hdr(Upgrade)``,
``KSR.hdr.get("Host")``. The xhttp module frames HTTP with a real HTTP parser (h11) and hands
the script the request built here.
"""

from __future__ import annotations

from collections.abc import Iterable

from kemi_core.sip.message import SipMsg
from kemi_core.sip.syntax import header_key


def http_request(method: str, target: str, version: str, headers: Iterable[tuple[str, str]],
                 body: bytes = b"") -> SipMsg:
    """A request ``METHOD target HTTP/x.y`` with ``headers`` (names as sent) and ``body``."""
    lines = [f"{method} {target} {version}\r"]
    names = [""]
    for name, value in headers:
        lines.append(f"{name}: {value}\r")
        names.append(header_key(name))
    msg = SipMsg(lines, names, body)
    msg._method = method
    msg._ruri = target
    msg.version = version
    return msg


def is_http(msg: SipMsg) -> bool:
    """Whether ``msg`` is an HTTP request (made by ``http_request``), not SIP."""
    return msg.version.upper().startswith("HTTP/")
