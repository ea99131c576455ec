"""Core.send_reply (reply_destination and Core.send written out in one frame) sends where
reply_destination says, from the socket the request came to, counts what Core.send counts, and
marks the context replied only when the transport took the bytes."""

from __future__ import annotations

import pytest

from kemi_core.forwarding import reply_destination
from kemi_core.runtime.context import RecvInfo
from kemi_core.sip import SipParseError, parse_datagram
from kemi_core.testing.capture import offline_core

REQUEST = ("OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{proto} 10.0.0.9{port};branch=z9hG4bK1"
           "{rport}\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:u@127.0.0.1>\r\nCall-ID: c\r\n"
           "CSeq: 1 OPTIONS\r\n\r\n")
REPLY = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("proto", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("port", ["", ":5999"])
@pytest.mark.parametrize("rport", ["", ";rport", ";rport=7"])
@pytest.mark.parametrize("force_rport", [False, True])
def test_destination_as_reply_destination(proto: str, port: str, rport: str,
                                          force_rport: bool) -> None:
    core, transport = offline_core()
    raw = REQUEST.format(proto=proto.upper(), port=port, rport=rport).encode()
    rcv = RecvInfo(proto, "10.0.0.1", 5070, "127.0.0.1", 5060)
    ctx = core.new_context(parse_datagram(raw), rcv)
    ctx.force_rport = force_rport
    before = core.stats.sent_class[1].value if core.stats is not None else 0
    assert core.send_reply(ctx, REPLY) is True
    assert ctx.replied
    sent = transport.sent[-1]
    assert (sent.proto, sent.host, sent.port) == reply_destination(ctx.msg.via, rcv, force_rport)
    assert sent.local == ("127.0.0.1", 5060)
    assert sent.data == REPLY
    if core.stats is not None:
        assert core.stats.sent_class[1].value == before + 1


def test_refused_send_is_not_replied_nor_counted() -> None:
    core, transport = offline_core()
    transport.send = lambda *args: False  # type: ignore[method-assign]
    ctx = core.new_context(parse_datagram(REQUEST.format(proto="UDP", port="", rport="").encode()),
                           RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060))
    before = core.stats.sent_class[1].value if core.stats is not None else 0
    assert core.send_reply(ctx, REPLY) is False
    assert not ctx.replied
    if core.stats is not None:
        assert core.stats.sent_class[1].value == before


def test_no_transport_sends_nothing() -> None:
    core, _ = offline_core()
    core.transport = None
    ctx = core.new_context(parse_datagram(REQUEST.format(proto="UDP", port="", rport="").encode()),
                           RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060))
    assert core.send_reply(ctx, REPLY) is False
    assert not ctx.replied


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_unreadable_via_raises_for_every_transport(proto: str) -> None:
    core, transport = offline_core()
    raw = REQUEST.format(proto="UDP", port="", rport="").replace("SIP/2.0/UDP 10.0.0.9", "bad")
    ctx = core.new_context(parse_datagram(raw.encode()),
                           RecvInfo(proto, "10.0.0.1", 5070, "127.0.0.1", 5060))
    with pytest.raises(SipParseError):
        core.send_reply(ctx, REPLY)
    assert transport.sent == []
