"""usual_reply (sl's stateless reply built and addressed in one compiled call) gives what the
Python way gives: build_reply's bytes with the stateless tag, sent where reply_destination says
from the socket the request came to, the top Via with ;received and ;rport= as reply_top_via
writes them; None (the Python way decides) for anything else."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.forwarding import reply_destination
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.sip import build_reply, parse_datagram, reply_top_via, request_crc32, usual_reply
from kemi_core.testing.capture import offline_core

pytestmark = pytest.mark.skipif(usual_reply is None, reason="_fast not built")

REQUEST = ("{method} sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{proto} {host}{port};branch=z9hG4bK1"
           "{rport}\r\nVia: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK2\r\nFrom: <sip:a@example.com>;tag=1"
           "\r\nTo: <sip:u@127.0.0.1>{to_tag}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n")
PREFIX = "7a3c"


def context(proto: str = "udp", port: str = "", rport: str = "", method: str = "OPTIONS",
            to_tag: str = "", raw: str | None = None, host: str = "10.0.0.1") -> MsgContext:
    """A request received from 10.0.0.1:5070 (its top Via names ``host``)."""
    core, _ = offline_core()
    text = raw if raw is not None else REQUEST.format(
        method=method, proto=proto.upper(), port=port, rport=rport, to_tag=to_tag, host=host)
    return core.new_context(parse_datagram(text.encode()),
                            RecvInfo(proto, "10.0.0.1", 5070, "127.0.0.2", 5080))


def expected(ctx: MsgContext, code: int, reason: str, added: Any = ()) -> tuple[Any, ...]:
    rcv = ctx.rcv
    top = reply_top_via(ctx.msg, rcv.src_ip, rcv.src_port, ctx.force_rport)
    tag = f"{PREFIX}.{request_crc32(ctx.msg):08x}"
    data = build_reply(ctx.msg, code, reason, tag, added, top_via=top)
    proto, host, port = reply_destination(ctx.msg.via, ctx.rcv, ctx.force_rport)
    return data, proto, host, port, (ctx.rcv.dst_ip, ctx.rcv.dst_port)


@pytest.mark.parametrize("proto", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("port", ["", ":5999"])
@pytest.mark.parametrize("rport", ["", ";rport", ";rport=7"])
@pytest.mark.parametrize("force_rport", [False, True])
@pytest.mark.parametrize("host", ["10.0.0.1", "10.0.0.9"])
def test_same_bytes_and_destination(proto: str, port: str, rport: str, force_rport: bool,
                                    host: str) -> None:
    ctx = context(proto, port, rport, host=host)
    ctx.force_rport = force_rport
    assert usual_reply is not None
    made = usual_reply(ctx, 404, "Not here", PREFIX, ())
    # force_rport and an ;rport with a value go the Python way; the rest is made here
    assert (made is None) == (force_rport or rport == ";rport=7")
    if made is not None:
        assert made == expected(ctx, 404, "Not here")


@pytest.mark.parametrize("via", ["10.0.0.1:5070;rport;branch=z9hG4bK1",
                                 "10.0.0.9;x=1;rport;branch=z9hG4bK1", "10.0.0.9;branch=z9hG4bK1",
                                 "10.0.0.1;received=10.0.0.1;branch=z9hG4bK1",
                                 '10.0.0.1;x="a;rport";rport;branch=z9hG4bK1',
                                 "10.0.0.1; rport;branch=z9hG4bK1", "10.0.0.1;RPORT;branch=z9",
                                 "10.0.0.1;rport;rport;branch=z9hG4bK1"])
def test_stamped_vias_made_here_or_declined(via: str) -> None:
    """The compiled reply stamps a bare ;rport or a host that is not the source; every other
    shape (an old ;received, a quoted string, odd spelling, two ;rport) is the Python way's."""
    raw = REQUEST.format(method="OPTIONS", proto="UDP", port="", rport="", to_tag="",
                         host="X").replace("SIP/2.0/UDP X;branch=z9hG4bK1", f"SIP/2.0/UDP {via}")
    ctx = context(raw=raw)
    assert usual_reply is not None
    made = usual_reply(ctx, 200, "OK", PREFIX, ())
    handled = via in ("10.0.0.1:5070;rport;branch=z9hG4bK1", "10.0.0.9;x=1;rport;branch=z9hG4bK1",
                      "10.0.0.9;branch=z9hG4bK1")
    assert (made is not None) == handled
    if made is not None:
        assert made == expected(ctx, 200, "OK")
        assert b";received=10.0.0.1\r\n" in made[0]


@pytest.mark.parametrize("code", [101, 180, 200, 486, 699])
def test_codes_and_added_headers(code: int) -> None:
    ctx = context()
    added = [("Contact", "<sip:u@10.0.0.1>"), ("Expires", "60")]
    assert usual_reply is not None
    assert usual_reply(ctx, code, "Any", PREFIX, added) == expected(ctx, code, "Any", added)


def test_a_tagged_to_and_an_empty_prefix() -> None:
    ctx = context(to_tag=";tag=x")
    assert usual_reply is not None
    made = usual_reply(ctx, 200, "OK", "", ())
    assert made is not None
    tag = f".{request_crc32(ctx.msg):08x}"
    assert made[0] == build_reply(ctx.msg, 200, "OK", tag)
    assert b"tag=x" in made[0] and tag.encode() not in made[0]


def test_unusual_requests_take_the_python_way() -> None:
    assert usual_reply is not None
    ctx = context()
    for code in (100, 300, 302, 399, 700, 99, 2**80):
        assert usual_reply(ctx, code, "X", PREFIX, ()) is None, code
    assert usual_reply(ctx, True, "X", PREFIX, ()) is None  # not an int as such
    assert usual_reply(context(method="ACK"), 200, "OK", PREFIX, ()) is None
    for key in ("reply_headers", "reply_body"):
        queued = context()
        queued.extra[key] = []
        assert usual_reply(queued, 200, "OK", PREFIX, ()) is None
    assert usual_reply(ctx, 200, "O\r\nK", PREFIX, ()) is None  # build_reply's error
    assert usual_reply(ctx, 200, "OK", PREFIX, [("X", "a\r\nb")]) is None
    no_call_id = REQUEST.format(method="OPTIONS", proto="UDP", port="", rport="", to_tag="",
                                host="10.0.0.1")
    assert usual_reply(context(raw=no_call_id.replace("Call-ID: c\r\n", "")), 200, "OK", PREFIX,
                       ()) is None
    bad_via = no_call_id.replace("SIP/2.0/UDP 10.0.0.1", "bad")
    assert usual_reply(context(raw=bad_via), 200, "OK", PREFIX, ()) is None
    reply = context()
    reply.msg = parse_datagram(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1\r\n"
                               b"From: <sip:a@x>;tag=1\r\nTo: <sip:u@y>\r\nCall-ID: c\r\n"
                               b"CSeq: 1 OPTIONS\r\n\r\n")
    assert usual_reply(reply, 200, "OK", PREFIX, ()) is None


def test_sl_sends_what_it_sent_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """sl_send_reply through usual_reply and through its Python way send the same bytes to the
    same place, count the same, mark the context replied."""
    import kemi_sl

    core, transport = offline_core(("sl", kemi_sl))
    sent = []
    for compiled in (usual_reply, None):
        monkeypatch.setattr(kemi_sl, "usual_reply", compiled)
        ctx = context()
        ctx.core = core
        before = kemi_sl._state.stats.for_code[404].value  # type: ignore[union-attr]
        assert kemi_sl.sl_send_reply(ctx, 404, "Not here", ()) == 1
        assert ctx.replied
        assert kemi_sl._state.stats.for_code[404].value == before + 1  # type: ignore[union-attr]
        sent.append(transport.sent[-1])
    assert sent[0] == sent[1]


def test_refused_send_fails_and_counts_a_failure() -> None:
    import kemi_sl

    core, transport = offline_core(("sl", kemi_sl))
    transport.send = lambda *args: False  # type: ignore[method-assign]
    ctx = context()
    ctx.core = core
    before = kemi_sl._state.stats.failures.value  # type: ignore[union-attr]
    assert kemi_sl.sl_send_reply(ctx, 404, "Not here") == -1
    assert not ctx.replied
    assert kemi_sl._state.stats.failures.value == before + 1  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["plain", "caf\u00e9", "\u4e2d\u6587", "\U0001f600"])
def test_wide_text_joins_as_python_does(value: str) -> None:
    """The header lines and the tagged To are joined without a format: text wider than ASCII
    (Latin-1, BMP, astral) comes out as build_reply_py's."""
    from kemi_core.sip.reply import build_reply_py

    raw = REQUEST.format(method="OPTIONS", proto="UDP", port="", rport="", to_tag="",
                         host="10.0.0.1").replace(
        "To: <sip:u@127.0.0.1>", f'To: "{value}" <sip:u@127.0.0.1>')
    ctx = context(raw=raw)
    added = [("X-Note", value)]
    assert usual_reply is not None
    made = usual_reply(ctx, 200, "OK", f"p{value}", added)
    assert made is not None
    tag = f"p{value}.{request_crc32(ctx.msg):08x}"
    assert made[0] == build_reply_py(ctx.msg, 200, "OK", tag, added)
