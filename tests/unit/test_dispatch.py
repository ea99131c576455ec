"""The dispatcher's guard: parse errors, script errors, replies forwarded statelessly."""

from __future__ import annotations

from kemi_core.engine import ScriptDrop, ScriptExit
from kemi_core.errors import ScriptError
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.dispatch import Dispatcher, salvage_error_reply
from kemi_core.sip import ParseLimits, parse_datagram
from kemi_core.testing.capture import offline_core
from kemi_core.testing.udp_client import request

RCV = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)


class ScriptedEngine:
    """A minimal engine whose request route is a Python callable given by the test."""

    name = "scripted"

    def __init__(self, route) -> None:  # type: ignore[no-untyped-def]
        self.route = route
        self.seen: list[str] = []

    def load(self) -> None: ...

    def has_route(self, name: str) -> bool:
        return name == "ksr_reply_route"

    def run(self, name: str, ctx: MsgContext) -> int:
        self.seen.append(name)
        if name == "ksr_request_route":
            return int(self.route(ctx))
        return 1

    def reload(self) -> None: ...


def _dispatcher(route):  # type: ignore[no-untyped-def]
    core, tr = offline_core()
    core.engine = ScriptedEngine(route)
    return Dispatcher(core, ParseLimits()), core, tr


def test_script_exception_gets_500_and_is_counted() -> None:
    def boom(ctx: MsgContext) -> int:
        raise RuntimeError("script bug")

    d, _, tr = _dispatcher(boom)
    d.on_data(request("INVITE", "sip:b@127.0.0.1", 40000), RCV)
    assert tr.sent[0].msg.status == 500
    stats = d.stats
    assert stats.script_errors.value == 1
    assert (stats.rcv_requests.value, stats.request_by_method["INVITE"].value) == (1, 1)
    assert (stats.sent_replies.value, stats.sent_class[4].value) == (1, 1)  # the 500


def test_engine_reported_error_gets_500() -> None:
    def reported(ctx: MsgContext) -> int:
        raise ScriptError("kamailio.lua:3: attempt to call a nil value")

    d, _, tr = _dispatcher(reported)
    d.on_data(request("OPTIONS", "sip:b@127.0.0.1", 40000), RCV)
    assert tr.sent[0].msg.status == 500
    assert d.stats.script_errors.value == 1


def test_exit_and_drop_are_not_errors() -> None:
    def ex(ctx: MsgContext) -> int:
        raise ScriptExit()

    def dr(ctx: MsgContext) -> int:
        raise ScriptDrop()

    for route in (ex, dr):
        d, _, tr = _dispatcher(route)
        d.on_data(request("OPTIONS", "sip:b@127.0.0.1", 40000), RCV)
        assert tr.sent == [] and d.stats.script_errors.value == 0


def test_no_500_for_ack_and_none_after_a_reply() -> None:
    def boom(ctx: MsgContext) -> int:
        raise RuntimeError("x")

    d, _, tr = _dispatcher(boom)
    d.on_data(request("ACK", "sip:b@127.0.0.1", 40000), RCV)
    assert tr.sent == []


def test_parse_error_answers_400_when_readable_else_drops() -> None:
    d, _, tr = _dispatcher(lambda ctx: 1)
    good = request("OPTIONS", "sip:b@127.0.0.1", 40000)
    d.on_data(good.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), RCV)
    d.on_data(b"complete garbage\r\n\r\n", RCV)
    d.on_data(b"\r\n\r\n", RCV)  # keep-alive: not even counted
    assert len(tr.sent) == 1
    reply = tr.sent[0].msg
    assert reply.status in (400, 505)
    assert d.stats.bad_msg_hdr.value == 2 and d.stats.rcv_requests.value == 0


def test_salvaged_reply_needs_the_matching_headers() -> None:
    raw = request("INVITE", "sip:b@127.0.0.1", 40000)
    reply = salvage_error_reply(raw, 400, "Bad CSeq")
    assert reply is not None and reply.startswith(b"SIP/2.0 400 Bad CSeq\r\n")
    assert parse_datagram(reply).call_id == parse_datagram(raw).call_id
    no_callid = b"\r\n".join(x for x in raw.split(b"\r\n") if not x.startswith(b"Call-ID"))
    assert salvage_error_reply(no_callid, 400, "x") is None
    assert salvage_error_reply(raw.replace(b"INVITE sip", b"ACK sip", 1), 400, "x") is None


def test_reply_forwarded_to_next_via_after_popping_ours() -> None:
    d, core, tr = _dispatcher(lambda ctx: 1)
    reply = (b"SIP/2.0 200 OK\r\n"
             b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\r\n"
             b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKtheirs;received=127.0.0.2;rport=41000\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
             b"Content-Length: 0\r\n\r\n")
    d.on_data(reply, RecvInfo("udp", "127.0.0.1", 5080, "127.0.0.1", 5060))
    (sent,) = tr.sent
    assert (sent.host, sent.port) == ("127.0.0.2", 41000)
    assert sent.msg.via.branch == "z9hG4bKtheirs"
    assert core.engine.seen == ["ksr_reply_route"]  # type: ignore[union-attr]
    stats = d.stats
    assert (stats.rcv_replies.value, stats.reply_class[1].value, stats.fwd_replies.value) == (1, 1, 1)
    assert stats.reply_class_method[(2, "INVITE")].value == 1 and stats.sent_replies.value == 1


def test_reply_not_for_us_is_dropped() -> None:
    d, _, tr = _dispatcher(lambda ctx: 1)
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKx\r\n"
             b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKy\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
             b"Content-Length: 0\r\n\r\n")
    d.on_data(reply, RCV)
    assert tr.sent == [] and d.stats.drop_replies.value == 1


def test_onsend_route_sees_the_routed_request_and_can_drop_it() -> None:
    """As Kamailio 5.6: the route sees the request as routed (its Via as received), the bytes
    going out only as send_info's buf; what it changes is not sent; drop stops the send."""
    from kemi_core.core_exports.forward import forward_uri

    seen: list[tuple[int, object]] = []

    class OnsendEngine(ScriptedEngine):
        def has_route(self, name: str) -> bool:
            return name == "ksr_onsend_route"

        def run(self, name: str, ctx: MsgContext) -> int:
            seen.append((ctx.msg.vias[0].port, dict(ctx.extra["send_info"])))
            ctx.msg.append_header("X-Onsend", "1")  # not sent (Kamailio: no effect either)
            if ctx.msg.has_header("X-Drop"):
                ctx.dropped = True
            return 1

    core, tr = offline_core()
    core.engine = OnsendEngine(lambda ctx: 1)
    ctx = core.new_context(parse_datagram(request("MESSAGE", "sip:b@127.0.0.1", 40000)), RCV)
    assert forward_uri(ctx, "sip:127.0.0.1:5090") == 1
    assert len(tr.sent) == 1
    sent = tr.sent[0].data
    assert b"X-Onsend" not in sent
    assert seen[0] == (40000, {"proto": "udp", "host": "127.0.0.1", "port": 5090, "buf": sent})
    dropped = core.new_context(parse_datagram(request("MESSAGE", "sip:b@127.0.0.1", 40000,
                                                      extra="X-Drop: 1")), RCV)
    assert forward_uri(dropped, "sip:127.0.0.1:5090") == 1
    assert len(tr.sent) == 1  # the onsend route dropped the second one


def test_onsend_route_reply_runs_on_forwarded_replies_and_drops() -> None:
    """onsend_route_reply=yes: the route sees the reply as received (our Via on top) and its
    bytes as they go; a drop keeps it from going (counted as a dropped reply)."""
    seen: list[tuple[int, str, bytes]] = []

    class OnsendEngine(ScriptedEngine):
        def has_route(self, name: str) -> bool:
            return name in ("ksr_onsend_route", "ksr_reply_route")

        def run(self, name: str, ctx: MsgContext) -> int:
            if name == "ksr_onsend_route":
                seen.append((ctx.msg.status, ctx.msg.via.branch, ctx.extra["send_info"]["buf"]))
                ctx.dropped = ctx.msg.status == 180
            return 1

    core, tr = offline_core()
    core.engine = OnsendEngine(lambda ctx: 1)
    d = Dispatcher(core, ParseLimits())
    rcv = RecvInfo("udp", "127.0.0.1", 5080, "127.0.0.1", 5060)
    replies = (b"SIP/2.0 STATUS X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours\r\n"
               b"Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKtheirs\r\n"
               b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: x\r\n"
               b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    for status in (180, 200):
        d.on_data(replies.replace(b"STATUS", str(status).encode()), rcv)
    assert seen == [] and len(tr.sent) == 2  # onsend_route_reply=no: not run
    tr.sent.clear()
    core.onsend_reply = True
    for status in (180, 200):
        d.on_data(replies.replace(b"STATUS", str(status).encode()), rcv)
    (sent,) = tr.sent
    assert sent.msg.status == 200
    assert [(s, b) for s, b, _ in seen] == [(180, "z9hG4bKours"), (200, "z9hG4bKours")]
    assert seen[1][2] == sent.data
    assert d.stats.drop_replies.value == 1


def test_ack_filters_run_for_an_ack_only_and_a_true_one_consumes_it() -> None:
    routed: list[str] = []
    d, core, _ = _dispatcher(lambda ctx: routed.append(ctx.msg.method) or 1)
    asked: list[str] = []

    def absorb(ctx: MsgContext) -> bool:
        asked.append(ctx.msg.method)
        return ctx.msg.call_id == "ours"

    core.ack_filters.append(absorb)
    d.on_data(request("INVITE", "sip:b@127.0.0.1", 40000), RCV)
    d.on_data(request("ACK", "sip:b@127.0.0.1", 40000, call_id="ours"), RCV)
    d.on_data(request("ACK", "sip:b@127.0.0.1", 40000, call_id="theirs"), RCV)
    assert asked == ["ACK", "ACK"]  # never for the INVITE
    assert routed == ["INVITE", "ACK"]  # the consumed ACK did not reach the script
