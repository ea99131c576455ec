"""KSR.forward / forward_uri (stateless forwarding) and the transport knobs."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.core_exports import core_exports
from kemi_core.forwarding import Resolver
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import parse_datagram

REGISTRY = KemiRegistry()
REGISTRY.add(core_exports())

INVITE = (
    b"INVITE sip:bob@127.0.0.1:5080 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP client.atlanta.com:5060;branch=z9hG4bK74bf9;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@biloxi.com>\r\n"
    b"From: <sip:alice@atlanta.com>;tag=9fxced76sl\r\n"
    b"Call-ID: 3848276298220188511@atlanta.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Recorder:
    def __init__(self, ok: bool = True) -> None:
        self.sent: list[tuple[str, str, int, bytes]] = []
        self.ok = ok

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.sent.append((proto, host, port, data))
        return self.ok

    def local_address(self, proto: str) -> tuple[str, int]:
        return ("127.0.0.1", 5060 if proto == "udp" else 5061)


def make_ctx(raw: bytes = INVITE, proto: str = "udp",
             ok: bool = True) -> tuple[MsgContext, Recorder]:
    core = Core(CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)]))
    rec = Recorder(ok)
    core.attach_transport(rec)
    ctx = core.new_context(parse_datagram(raw), RecvInfo(proto, "10.0.0.1", 5070,
                                                         "127.0.0.1", 5060))
    return ctx, rec


def call(ctx: MsgContext, name: str, *args: Any) -> Any:
    module, _, fname = name.rpartition(".")
    exp = REGISTRY.lookup(module, fname)
    assert exp is not None
    return exp.func(ctx, *args)


def test_forward_to_ruri() -> None:
    ctx, rec = make_ctx()
    assert call(ctx, "forward") == 1
    assert len(rec.sent) == 1
    proto, host, port, data = rec.sent[0]
    assert (proto, host, port) == ("udp", "127.0.0.1", 5080)
    out = parse_datagram(data)
    vias = out.vias
    assert len(vias) == 2
    assert (vias[0].transport, vias[0].host, vias[0].port) == ("UDP", "127.0.0.1", 5060)
    assert vias[0].branch is not None and vias[0].branch.startswith("z9hG4bK")
    assert vias[0].branch != "z9hG4bK74bf9"
    # the client's Via gets received= and a filled rport (RFC 3261 18.2.1, RFC 3581)
    assert vias[1].received == "10.0.0.1"
    assert vias[1].rport == 5070
    assert out.max_forwards == 70  # left to the maxfwd module
    assert out.ruri == "sip:bob@127.0.0.1:5080"
    # the message being routed is untouched
    assert ctx.msg.max_forwards == 70
    assert len(ctx.msg.vias) == 1


def test_forward_branch_is_stable_for_retransmissions() -> None:
    ctx1, rec1 = make_ctx()
    ctx2, rec2 = make_ctx()
    call(ctx1, "forward")
    call(ctx2, "forward")
    b1 = parse_datagram(rec1.sent[0][3]).via.branch
    b2 = parse_datagram(rec2.sent[0][3]).via.branch
    assert b1 == b2
    other, rec3 = make_ctx(INVITE.replace(b"z9hG4bK74bf9", b"z9hG4bK99999"))
    call(other, "forward")
    assert parse_datagram(rec3.sent[0][3]).via.branch != b1


def test_forward_prefers_du_and_tcp() -> None:
    ctx, rec = make_ctx()
    ctx.dst_uri = "sip:127.0.0.1:5090;transport=tcp"
    assert call(ctx, "forward") == 1
    proto, host, port, data = rec.sent[0]
    assert (proto, host, port) == ("tcp", "127.0.0.1", 5090)
    top = parse_datagram(data).via
    assert (top.transport, top.port) == ("TCP", 5061)


def test_forward_uri_localhost_and_default_port() -> None:
    ctx, rec = make_ctx()
    assert call(ctx, "forward_uri", "sip:localhost") == 1
    assert rec.sent[0][1] in ("127.0.0.1", "::1")
    assert rec.sent[0][2] == 5060


def test_forward_failures() -> None:
    ctx, rec = make_ctx()
    assert call(ctx, "forward_uri", "sip:unresolvable.example.com") == -1
    assert call(ctx, "forward_uri", "not a uri") == -1
    assert call(ctx, "forward_uri", "sips:127.0.0.1") == -1  # no TLS transport
    assert rec.sent == []
    failing, _ = make_ctx(ok=False)
    assert call(failing, "forward") == -1


def test_forward_advertised_address_and_local_rport() -> None:
    ctx, rec = make_ctx()
    assert call(ctx, "set_advertised_address", "proxy.example.net") == 1
    assert call(ctx, "set_advertised_port", "5099") == 1
    assert call(ctx, "add_local_rport") is True
    assert call(ctx, "forward") == 1
    top = parse_datagram(rec.sent[0][3]).via
    assert (top.host, top.port) == ("proxy.example.net", 5099)
    assert top.rport is True
    assert call(ctx, "set_advertised_port", "x") == -1
    assert call(ctx, "set_advertised_address", "") == -1


def test_force_rport_adds_rport_when_client_did_not() -> None:
    raw = INVITE.replace(b";rport", b"")
    ctx, rec = make_ctx(raw)
    assert call(ctx, "force_rport") is True
    assert ctx.force_rport is True
    call(ctx, "forward")
    assert parse_datagram(rec.sent[0][3]).vias[1].rport == 5070


def test_reply_cannot_be_forwarded_by_script() -> None:
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n"
             b"To: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
             b"CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n")
    ctx, rec = make_ctx(reply)
    assert call(ctx, "forward") == -1
    assert rec.sent == []


def test_connection_flags_and_tcp_alias() -> None:
    ctx, _ = make_ctx()
    for name, key in (("set_forward_close", "forward_close"),
                      ("set_forward_no_connect", "forward_no_connect"),
                      ("set_reply_close", "reply_close"),
                      ("set_reply_no_connect", "reply_no_connect")):
        assert call(ctx, name) is True
        assert ctx.extra[key] is True
    assert call(ctx, "add_tcp_alias", 5080) == -1  # UDP has no connection
    tcp, _ = make_ctx(proto="tcp")
    assert call(tcp, "add_tcp_alias", 5080) == 1
    assert call(tcp, "add_tcp_alias_via") == 1
    assert tcp.extra["tcp_aliases"] == [5080, 5060]


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("example.com", None), ("", None),
])
def test_ip_literals(host: str, expected: str | None) -> None:
    assert Resolver().literal(host) == expected


def test_next_hop_of_secure_uris() -> None:
    """sips: is TLS whatever its transport parameter says (RFC 3261 26.2.2): tcp -> tls,
    ws -> wss; sips over UDP is no usable next hop."""
    from kemi_core.forwarding import uri_target

    assert uri_target("sips:127.0.0.1") == ("tls", "127.0.0.1", 5061)
    assert uri_target("sips:a@h;transport=tcp") == ("tls", "h", 5061)
    assert uri_target("sips:a@h:8443;transport=ws") == ("wss", "h", 8443)
    assert uri_target("sips:a@h;transport=udp") is None
    assert uri_target("sip:a@h;transport=TLS") == ("tls", "h", 5061)
    assert uri_target("sip:a@h;transport=ws") == ("ws", "h", 80)
