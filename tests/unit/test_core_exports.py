"""Core KSR.* exports: names and kinds, logging, method/proto tests, is_myself, flags, URIs."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.config.model import Alias, CoreConfig, ListenAddr
from kemi_core.core_exports import core_exports
from kemi_core.kemi.exports import ParamKind, ReturnKind
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.runtime.context import Branch, MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import parse_datagram

REGISTRY = KemiRegistry()
REGISTRY.add(core_exports())


def req(method: str = "INVITE", ruri: str = "sip:bob@127.0.0.1:5060",
        from_uri: str = "sip:alice@atlanta.com", to_uri: str = "sip:bob@example.com") -> bytes:
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <{to_uri}>\r\n"
        f"From: <{from_uri}>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def make_ctx(raw: bytes | None = None, proto: str = "udp", src_ip: str = "10.0.0.2",
             src_port: int = 5062) -> MsgContext:
    cfg = CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)],
                     aliases=[Alias("sip.example.net")])
    core = Core(cfg)
    return core.new_context(parse_datagram(raw or req()),
                            RecvInfo(proto, src_ip, src_port, "127.0.0.1", 5060))


def call(ctx: MsgContext, qname: str, *args: Any) -> Any:
    module, _, name = qname.rpartition(".")
    exp = REGISTRY.lookup(module, name)
    assert exp is not None, qname
    return exp.func(ctx, *args)


def test_export_set() -> None:
    names = {e.qualified_name for e in REGISTRY}
    assert len(REGISTRY) >= 80
    for expected in ("dbg", "info", "notice", "warn", "err", "crit", "log", "is_INVITE",
                     "is_KDMQ", "is_method", "is_method_in", "is_myself", "is_myself_nhuri",
                     "setflag", "setbiflag", "issflagset", "seturi", "setdsturi",
                     "force_rport", "add_local_rport", "set_drop", "forward", "forward_uri",
                     "is_UDP", "is_WSX", "is_proto", "is_IPv4", "to_TCP", "is_src_port",
                     "get_debug", "set_advertised_address", "add_tcp_alias",
                     "hdr.append", "hdr.append_to_reply", "hdr.get_idx", "hdr.rminsert",
                     "pv.get", "pv.getvn", "pv.is_null", "x.exit", "x.drop", "x.modf"):
        assert expected in names, expected
    setbiflag = REGISTRY.lookup("", "setbiflag")
    assert setbiflag is not None
    assert setbiflag.params == (ParamKind.INT, ParamKind.INT)
    assert setbiflag.returns is ReturnKind.BOOL
    pv_get = REGISTRY.lookup("pv", "get")
    assert pv_get is not None and pv_get.returns is ReturnKind.XVAL
    assert REGISTRY.lookup("", "info").returns is ReturnKind.NONE  # type: ignore[union-attr]
    assert REGISTRY.lookup("hdr", "append_after").param_names == (  # type: ignore[union-attr]
        "hdrval", "hdrname")


def test_logging_levels(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ctx()
    caplog.set_level(logging.DEBUG, logger="kemi.script")
    call(ctx, "dbg", "d\n")
    call(ctx, "info", "i\n")
    call(ctx, "notice", "n")
    call(ctx, "warn", "w")
    call(ctx, "err", "e")
    call(ctx, "crit", "c")
    call(ctx, "log", "warn", "lw")
    call(ctx, "log", "bogus", "lb")
    got = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kemi.script"]
    assert got == [("DEBUG", "d"), ("INFO", "i"), ("NOTICE", "n"), ("WARNING", "w"),
                   ("ERROR", "e"), ("CRITICAL", "c"), ("WARNING", "lw"), ("ERROR", "lb")]


def test_get_debug() -> None:
    ctx = make_ctx()
    ctx.core.config.debug = 3
    assert call(ctx, "get_debug") == 3


@pytest.mark.parametrize("method", ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS",
                                    "SUBSCRIBE", "PUBLISH", "NOTIFY", "REFER", "INFO",
                                    "UPDATE", "PRACK", "MESSAGE", "KDMQ"])
def test_is_method_family(method: str) -> None:
    ctx = make_ctx(req(method))
    assert call(ctx, f"is_{method}") is True
    other = "BYE" if method != "BYE" else "INVITE"
    assert call(ctx, f"is_{other}") is False
    assert call(ctx, "is_method", method.lower()) is True
    assert call(ctx, "is_method", f"FOO,{method}") is True
    assert call(ctx, "is_method", "FOO,BAR") is False


def test_is_method_in_letters() -> None:
    ctx = make_ctx(req("REGISTER"))
    assert call(ctx, "is_method_in", "IR") is True
    assert call(ctx, "is_method_in", "IABC") is False
    assert call(make_ctx(req("BYE")), "is_method_in", "IABC") is True
    assert call(ctx, "is_method_in", "Z") is False  # unknown letter
    assert call(ctx, "is_method_in", "RZ") is True  # found before the unknown letter
    assert call(ctx, "is_method_in", "ZR") is False  # the unknown letter stops the walk
    for _ in range(2):  # the second time from the memo of letter sets
        assert call(ctx, "is_method_in", "IBSU") is False
        assert call(make_ctx(req("BYE")), "is_method_in", "IBSU") is True


def test_method_of_reply_is_cseq_method() -> None:
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
             b"To: <sip:b@x>;tag=2\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\n"
             b"CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n")
    ctx = make_ctx(reply)
    assert call(ctx, "is_INVITE") is True
    assert call(ctx, "is_method", "INVITE") is True


def test_proto_tests() -> None:
    udp = make_ctx()
    tcp = make_ctx(proto="tcp")
    assert call(udp, "is_UDP") and not call(udp, "is_TCP")
    assert call(tcp, "is_TCP") and not call(tcp, "is_UDP")
    assert not call(tcp, "is_TLS") and not call(tcp, "is_WSX") and not call(tcp, "is_SCTP")
    assert call(make_ctx(proto="wss"), "is_WSX") and call(make_ctx(proto="wss"), "is_WSS")
    assert call(udp, "is_proto", "tu") and not call(udp, "is_proto", "ts")
    assert call(udp, "is_IPv4") and not call(udp, "is_IPv6")
    assert call(make_ctx(src_ip="::1"), "is_IPv6")
    assert call(udp, "is_src_port", 5062) and not call(udp, "is_src_port", 5060)
    assert call(udp, "is_dst_port", 5060)


def test_destination_proto_tests() -> None:
    ctx = make_ctx()
    assert call(ctx, "to_UDP") and call(ctx, "to_IPv4") and not call(ctx, "to_TCP")
    ctx.dst_uri = "sip:[::1]:5070;transport=tcp"
    assert call(ctx, "to_TCP") and call(ctx, "to_IPv6") and not call(ctx, "to_UDP")


def test_is_myself_family() -> None:
    ctx = make_ctx(req(from_uri="sip:me@sip.example.net", to_uri="sip:x@127.0.0.1:5070"))
    assert call(ctx, "is_myself", "sip:127.0.0.1") is True
    assert call(ctx, "is_myself", "sip:127.0.0.1:5060") is True
    assert call(ctx, "is_myself", "sip:127.0.0.1:5070") is False
    assert call(ctx, "is_myself", "sip:sip.example.net:9999") is True  # alias without port
    assert call(ctx, "is_myself", "sip:10.9.9.9") is False
    assert call(ctx, "is_myself", "garbage") is False
    # a bare host or IP (any port), as Kamailio: the official Python example checks $si so
    assert call(ctx, "is_myself", "127.0.0.1") is True
    assert call(ctx, "is_myself", "SIP.example.NET") is True
    assert call(ctx, "is_myself", "10.9.9.9") is False
    assert call(ctx, "is_myself", "127.0.0.1:5060") is False  # not a host name (Kamailio too)
    assert call(ctx, "is_myself", "") is False
    assert call(ctx, "is_myself_ruri") is True
    assert call(ctx, "is_myself_furi") is True
    assert call(ctx, "is_myself_turi") is False
    assert call(ctx, "is_myself_duri") is False
    assert call(ctx, "is_myself_nhuri") is True
    ctx.dst_uri = "sip:10.0.0.5"
    assert call(ctx, "is_myself_nhuri") is False
    ctx.dst_uri = "sip:127.0.0.1;lr"
    assert call(ctx, "is_myself_duri") is True
    assert call(ctx, "is_myself_srcip") is False
    assert call(ctx, "is_myself_suri") is False
    local = make_ctx(src_ip="127.0.0.1", src_port=5060)
    assert call(local, "is_myself_srcip") is True
    assert call(local, "is_myself_suri") is True


def test_message_flags() -> None:
    ctx = make_ctx()
    assert call(ctx, "setflag", 3) is True
    assert ctx.flags == 8
    assert call(ctx, "isflagset", 3) is True
    assert call(ctx, "isflagset", 4) is False
    assert call(ctx, "resetflag", 3) is True
    assert call(ctx, "isflagset", 3) is False
    assert call(ctx, "setflag", 32) is False
    assert call(ctx, "setflag", -1) is False
    assert call(ctx, "setflag", 31) is True and ctx.flags == 1 << 31


def test_branch_flags() -> None:
    ctx = make_ctx()
    assert call(ctx, "setbflag", 2) is True
    assert ctx.bflags == 4 and call(ctx, "isbflagset", 2)
    assert call(ctx, "resetbflag", 2) and not call(ctx, "isbflagset", 2)
    assert call(ctx, "setbiflag", 1, 1) is False  # no branch 1 yet
    ctx.branches.append(Branch(uri="sip:b@10.0.0.3"))
    assert call(ctx, "setbiflag", 1, 1) is True
    assert ctx.branches[0].flags == 2
    assert call(ctx, "isbiflagset", 1, 1) is True
    assert call(ctx, "isbiflagset", 1, 0) is False
    assert call(ctx, "resetbiflag", 1, 1) is True
    assert ctx.branches[0].flags == 0


def test_script_flags() -> None:
    ctx = make_ctx()
    assert call(ctx, "issflagset", 5) is False
    assert call(ctx, "setsflag", 5) is True
    assert call(ctx, "issflagset", 5) is True
    assert call(ctx, "resetsflag", 5) is True
    assert call(ctx, "issflagset", 5) is False
    assert call(ctx, "setsflag", 40) is False


def test_uri_rewrites() -> None:
    ctx = make_ctx()
    assert call(ctx, "setuser", "carol") is True
    assert ctx.msg.ruri == "sip:carol@127.0.0.1:5060"
    assert call(ctx, "sethost", "chicago.com") is True
    assert ctx.msg.ruri == "sip:carol@chicago.com:5060"
    assert call(ctx, "setuser", "") is True
    assert ctx.msg.ruri == "sip:chicago.com:5060"
    assert call(ctx, "sethost", "") is False
    assert call(ctx, "seturi", "sip:dave@10.1.1.1;transport=tcp") is True
    assert ctx.msg.ruri == "sip:dave@10.1.1.1;transport=tcp"
    assert call(ctx, "seturi", "no uri") is False
    assert ctx.msg.to_bytes().startswith(b"INVITE sip:dave@10.1.1.1;transport=tcp SIP/2.0")


def test_dst_uri() -> None:
    ctx = make_ctx()
    assert call(ctx, "isdsturiset") is False
    assert call(ctx, "setdsturi", "sip:10.0.0.9:5070") is True
    assert ctx.dst_uri == "sip:10.0.0.9:5070"
    assert call(ctx, "isdsturiset") is True
    assert call(ctx, "setdsturi", "bad uri") is False
    assert ctx.dst_uri == "sip:10.0.0.9:5070"
    assert call(ctx, "resetdsturi") is True
    assert ctx.dst_uri is None and call(ctx, "isdsturiset") is False
