"""The compiled forwarding helpers (kemi_core/sip/_fast.c) give what their pure forms give."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.forwarding import via as via_mod
from kemi_core.runtime.context import RecvInfo
from kemi_core.sip import SipParseError, parse_datagram

pytestmark = pytest.mark.skipif(via_mod.received_via is via_mod.received_via_py,
                                reason="the C helpers were not built (or KEMI_SIP_PURE)")

HOSTS = ["127.0.0.1", "10.0.0.7", "example.com", "[::1]", "::1", "[2001:db8::1]", "h"]
PARAMS = [";branch=z9hG4bK1", ";rport", ";rport=5062", ";rport=x", ";received=1.2.3.4",
          ";received", ";RPORT", ";Received=9.9.9.9", ";x=y", ";rport=", ";maddr=1.1.1.1",
          "; rport", ";rport ", ";Rport", ";rport;rport", ";xrport", ";rportx", ";rport=5062;rport",
          ";n\u00e4me=1"]
SOURCES = ["127.0.0.1", "10.0.0.7", "::1", "2001:db8::1"]


def context(rcv: RecvInfo, force_rport: bool) -> Any:
    """What received_via reads of a MsgContext."""
    return SimpleNamespace(rcv=rcv, force_rport=force_rport)


def outcome(fn: object, ctx: object, msg: object) -> object:
    try:
        return fn(ctx, msg)  # type: ignore[operator]
    except SipParseError as exc:
        return ("raised", exc.status)


@settings(max_examples=400, deadline=None)
@given(host=st.sampled_from(HOSTS), port=st.sampled_from(["", ":5061", ":x"]),
       params=st.lists(st.sampled_from(PARAMS), max_size=3),
       second=st.booleans(), reply=st.booleans(), src=st.sampled_from(SOURCES),
       src_port=st.sampled_from([5061, 5062]), force=st.booleans())
def test_received_via_compiled_is_the_pure_form(host: str, port: str, params: list[str],
                                                second: bool, reply: bool, src: str,
                                                src_port: int, force: bool) -> None:
    via = f"SIP/2.0/UDP {host}{port}{''.join(params)}"
    if second:
        via += ", SIP/2.0/TCP other:5070"
    start = "SIP/2.0 200 OK" if reply else "INVITE sip:a@b SIP/2.0"
    data = (f"{start}\r\nVia: {via}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
            f"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    ctx = context(RecvInfo("udp", src, src_port, "127.0.0.1", 5060), force)
    compiled = outcome(via_mod.received_via, ctx, parse_datagram(data))
    pure = outcome(via_mod.received_via_py, ctx, parse_datagram(data))
    assert compiled == pure


def test_received_via_usual_request() -> None:
    """;received before the first parameter, a forced ;rport just before it (Kamailio's places:
    tests/e2e/test_via_stamps_vs_kamailio.py)."""
    msg = parse_datagram(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5061;branch=z9"
                         b"hG4bK1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n")
    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
    assert via_mod.received_via(context(rcv, False), msg) == (
        "SIP/2.0/UDP 10.0.0.1:5061;received=127.0.0.1;branch=z9hG4bK1")
    assert via_mod.received_via(context(rcv, True), msg) == (
        "SIP/2.0/UDP 10.0.0.1:5061;rport=5070;received=127.0.0.1;branch=z9hG4bK1")
    rcv = RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060)
    assert via_mod.received_via(context(rcv, False), msg) is None


def test_received_via_compiled_takes_only_the_usual_via() -> None:
    """The compiled form answers a Via without ;received of its own, with a bare ;rport or none
    and no force_rport itself, and hands every other to the pure form."""
    from kemi_core.sip.syntax import via_received

    asked: list[str] = []

    def pure(ctx: object, msg: object) -> str:
        asked.append(msg.via.raw)  # type: ignore[attr-defined]
        return "pure"

    fast = via_received(pure)
    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)

    def request(via: str) -> object:
        return parse_datagram(f"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP {via}\r\n"
                              "Call-ID: c\r\nCSeq: 1 INVITE\r\n\r\n".encode())

    assert fast(context(rcv, False), request("127.0.0.1:5070;branch=z9hG4bK1")) is None
    assert fast(context(rcv, False), request("10.0.0.1;branch=z9hG4bK1;x")) == (
        "SIP/2.0/UDP 10.0.0.1;received=127.0.0.1;branch=z9hG4bK1;x")
    assert fast(context(rcv, False), request("10.0.0.1:5062;branch=z9hG4bK1;lr")) == (
        "SIP/2.0/UDP 10.0.0.1:5062;received=127.0.0.1;branch=z9hG4bK1;lr")
    assert fast(context(rcv, False), request("127.0.0.1:5070;branch=z9hG4bK1;rport")) == (
        "SIP/2.0/UDP 127.0.0.1:5070;received=127.0.0.1;branch=z9hG4bK1;rport=5070")
    assert asked == []
    for via in ("10.0.0.1;branch=z9hG4bK1;RPORT", "127.0.0.1;received=1.2.3.4",
                "127.0.0.1:5070;rport=5070", "127.0.0.1:5070;rport=1;rport"):
        assert fast(context(rcv, False), request(via)) == "pure"
    assert fast(context(rcv, True), request("127.0.0.1:5070;branch=z9hG4bK1")) == "pure"
    assert len(asked) == 5
