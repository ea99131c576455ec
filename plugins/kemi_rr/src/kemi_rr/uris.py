"""Small URI helpers: is a Route entry ours, its params as text, default ports."""

from __future__ import annotations

from kemi_core.api import Core
from kemi_core.sip import SipUri

PROTOS = ("udp", "tcp", "tls", "sctp", "ws", "wss")
#: WebSocket connections ride the TCP (ws) and TLS (wss) listen sockets
LISTEN_PROTO = {"ws": "tcp", "wss": "tls"}


def default_port(proto: str) -> int:
    return 5061 if proto in ("tls", "wss") else 5060


def uri_proto(uri: SipUri) -> str:
    t = uri.transport
    if t:
        return t
    return "tls" if uri.scheme == "sips" else "udp"


#: is_own's answers per (scheme, host, port, transport) for one set of the server's names
#: (core.myself: built once per core; another core's empties it); bounded: emptied when full
_OWN: dict[tuple[str, str, int | None, str | None], bool] = {}
_OWN_MAX = 1024
_own_names: list[object] = [None]


def is_own(core: Core, uri: SipUri | None) -> bool:
    """Whether a sip:/sips: URI names this server (a missing port is the default one)."""
    if uri is None:
        return False
    names = core.myself
    if names is not _own_names[0]:
        _OWN.clear()
        _own_names[0] = names
    # the memo's key holds every field the answer depends on, read as they are (the
    # ;transport= value as written): no default port to work out, no Python call, for a
    # URI seen before (rr asks 3-4 times per in-dialog request)
    key = (uri.scheme, uri.host, uri.port, uri.params.get("transport"))
    found = _OWN.get(key)
    if found is None:
        if len(_OWN) >= _OWN_MAX:
            _OWN.clear()
        found = _OWN[key] = _is_own(core, uri)
    return found


def _is_own(core: Core, uri: SipUri) -> bool:
    """is_own without its memo."""
    if uri.scheme not in ("sip", "sips") or not uri.host:
        return False
    port = uri.port if uri.port is not None else default_port(uri_proto(uri))
    return core.is_myself(uri.host, port)


def params_text(uri: SipUri) -> str:
    """``;lr;ftag=abc;nat=yes``: what check_route_param matches (leading ';' included)."""
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in uri.params.items()])


#: route_params' memo: URI text -> its params as text (bounded: emptied when full)
_ROUTE_PARAMS: dict[str, str] = {}
_ROUTE_PARAMS_MAX = 1024


def route_params(uri_text: str, uri: SipUri) -> str:
    """params_text of a Route entry's URI, ``uri`` being the read-only parse of ``uri_text``
    (NameAddr.uri): the same text gives the same params, so a call's ACK and BYE (and the
    next calls of a dialog's route) find them made."""
    found = _ROUTE_PARAMS.get(uri_text)
    if found is None:
        if len(_ROUTE_PARAMS) >= _ROUTE_PARAMS_MAX:
            _ROUTE_PARAMS.clear()
        found = _ROUTE_PARAMS[uri_text] = params_text(uri)
    return found


def param_value(params: str | None, name: str) -> tuple[bool, str | None]:
    """(present, value) of ``name`` in a ``;a=1;b`` string."""
    if not params:
        return False, None
    for item in params.split(";"):
        k, eq, v = item.partition("=")
        if k.strip().lower() == name:
            return True, v.strip() if eq else None
    return False, None


def hostport(host: str, port: int, proto: str) -> str:
    """Kamailio leaves out the default port of the protocol."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == default_port(proto) else f"{host}:{port}"
