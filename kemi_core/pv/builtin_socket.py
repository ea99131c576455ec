"""Pseudo-variables of the sockets a message came through: the local one it arrived on ($Rn
$Ru $Rut, and $RAi $RAp $RAu $RAut as its listen advertises it), the sender's ($sas $sut), and
the transport's number ($prid). Kamailio's formats, learnt by running it: ``sip:ip:port`` with
``;transport=`` when not UDP (the ``t`` forms: always), ``proto:ip:port``, IPv6 in brackets."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.forwarding.targets import LISTEN_OF
from kemi_core.pv.registry import PvValue, register_builtin

if TYPE_CHECKING:
    from kemi_core.config.model import ListenAddr
    from kemi_core.runtime.context import MsgContext

#: Kamailio's protocol numbers ($prid)
PROTO_IDS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}


def _bracketed(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def _uri(host: str, port: int, proto: str, always_transport: bool) -> str:
    uri = f"sip:{_bracketed(host)}:{port}"
    return uri if proto == "udp" and not always_transport else f"{uri};transport={proto}"


def _listen(ctx: MsgContext) -> ListenAddr | None:
    """The listen socket the message arrived on (None: none of ours, a handed-over message
    whose RecvInfo says otherwise)."""
    rcv = ctx.rcv
    key = (LISTEN_OF.get(rcv.proto, rcv.proto), rcv.dst_ip, rcv.dst_port)
    for lst in ctx.core.config.listen:
        if (lst.proto, lst.host, lst.port) == key:
            return lst
    return None


def _advertised(ctx: MsgContext) -> tuple[str, int]:
    """Where the message arrived, as its listen socket advertises it (else as it is)."""
    lst = _listen(ctx)
    rcv = ctx.rcv
    if lst is None or not lst.advertise_host:
        return rcv.dst_ip, rcv.dst_port
    return lst.advertise_host, lst.advertise_port or rcv.dst_port


def _socket_name(ctx: MsgContext) -> PvValue:
    lst = _listen(ctx)
    return lst.name if lst is not None and lst.name else None


def _received_uri(always_transport: bool, advertised: bool) -> Callable[[MsgContext], PvValue]:
    def get(ctx: MsgContext) -> PvValue:
        rcv = ctx.rcv
        host, port = _advertised(ctx) if advertised else (rcv.dst_ip, rcv.dst_port)
        return _uri(host, port, rcv.proto, always_transport)
    return get


def _source_socket(ctx: MsgContext) -> PvValue:
    rcv = ctx.rcv
    return f"{rcv.proto}:{_bracketed(rcv.src_ip)}:{rcv.src_port}"


def _source_uri_with_transport(ctx: MsgContext) -> PvValue:
    rcv = ctx.rcv
    return _uri(rcv.src_ip, rcv.src_port, rcv.proto, True)


def _register() -> None:
    reg = register_builtin
    reg("Rn", _socket_name, doc="name of the listen socket the message arrived on")
    reg("Ru", _received_uri(False, False), doc="the local socket it arrived on, as a SIP URI")
    reg("Rut", _received_uri(True, False), doc="$Ru, always with its transport")
    reg("RAi", lambda c: _advertised(c)[0], doc="local IP it arrived on, as advertised")
    reg("RAp", lambda c: _advertised(c)[1], doc="local port it arrived on, as advertised")
    reg("RAu", _received_uri(False, True), doc="$Ru as advertised")
    reg("RAut", _received_uri(True, True), doc="$Rut as advertised")
    reg("sas", _source_socket, doc="source address as proto:ip:port")
    reg("sut", _source_uri_with_transport, doc="source address as a SIP URI with its transport")
    reg("prid", lambda c: PROTO_IDS.get(c.rcv.proto, 0), doc="transport as Kamailio's number")


_register()
