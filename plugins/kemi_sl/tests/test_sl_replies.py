"""sl: stateless replies on the wire (captured), To-tags, ACK absorption, error replies."""

from __future__ import annotations

import pytest

import kemi_sl
from kemi_core.api import Branch, MsgContext, SlApi
from kemi_core.testing import attach_dispatcher, context, offline_core, request


@pytest.fixture
def sl():  # type: ignore[no-untyped-def]
    return offline_core(("sl", kemi_sl))


def test_send_reply_goes_to_source_with_rport(sl) -> None:  # type: ignore[no-untyped-def]
    core, tr = sl
    ctx = context(core, request("OPTIONS", "sip:kemi@127.0.0.1", 5070), src=("127.0.0.1", 40000))
    assert kemi_sl.send_reply(ctx, 200, "OK Lua") == 1
    (sent,) = tr.sent
    # rport in the Via: back to the source port, from the socket it came in on (RFC 3581).
    assert (sent.proto, sent.host, sent.port, sent.local) == ("udp", "127.0.0.1", 40000, ("127.0.0.1", 5060))
    reply = sent.msg
    assert (reply.status, reply.reason) == (200, "OK Lua")
    assert reply.to.tag == kemi_sl.get_reply_totag(ctx)
    assert reply.call_id == ctx.msg.call_id and reply.cseq.number == ctx.msg.cseq.number
    assert ctx.replied


def test_without_rport_reply_goes_to_via_port() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    raw = request("OPTIONS", "sip:kemi@127.0.0.1", 5070).replace(b";rport", b"")
    ctx = context(core, raw, src=("127.0.0.1", 40000))
    kemi_sl.sl_send_reply(ctx, 404, "Not Here")
    assert tr.sent[0].port == 5070


def test_same_request_same_totag_other_request_other_totag() -> None:
    core, _ = offline_core(("sl", kemi_sl))
    raw = request("INVITE", "sip:bob@127.0.0.1", 5070, call_id="c1")
    t1 = kemi_sl.get_reply_totag(context(core, raw))
    t2 = kemi_sl.get_reply_totag(context(core, raw))
    t3 = kemi_sl.get_reply_totag(context(core, request("INVITE", "sip:bob@127.0.0.1", 5070, call_id="c2")))
    assert t1 == t2 != t3


def test_no_reply_to_ack_and_own_acks_absorbed() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    inv = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070, call_id="c9"))
    kemi_sl.sl_send_reply(inv, 486, "Busy Here")
    tag = tr.sent[0].msg.to.tag
    ack_raw = request("ACK", "sip:bob@127.0.0.1", 5070, call_id="c9").replace(
        b"To: <sip:bob@127.0.0.1>", f"To: <sip:bob@127.0.0.1>;tag={tag}".encode())
    ack = context(core, ack_raw)
    assert kemi_sl.sl_send_reply(ack, 200, "OK") == 1
    assert len(tr.sent) == 1  # nothing sent for the ACK
    assert any(f(ack) for f in core.ack_filters)  # the core drops it before the script
    other = context(core, request("ACK", "sip:bob@127.0.0.1", 5070).replace(
        b"To: <sip:bob@127.0.0.1>", b"To: <sip:bob@127.0.0.1>;tag=theirs"))
    assert not any(f(other) for f in core.ack_filters)


def test_100_has_no_totag_and_bad_codes_refused() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    ctx = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070))
    kemi_sl.sl_send_reply(ctx, 100, "Trying")
    assert tr.sent[0].msg.to.tag is None
    assert kemi_sl.sl_send_reply(ctx, 99, "x") == -1
    assert kemi_sl.sl_send_reply(ctx, 700, "x") == -1


def test_redirect_carries_destination_set_and_reply_headers() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    ctx = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070))
    ctx.msg.set_ruri("sip:bob@10.0.0.1")
    ctx.branches.append(Branch("sip:bob@10.0.0.2"))
    ctx.extra["reply_headers"] = ["X-Why: test\r\n"]
    kemi_sl.sl_send_reply(ctx, 302, "Moved")
    reply = tr.sent[0].msg
    assert [c.uri_text for c in reply.contacts] == ["sip:bob@10.0.0.1", "sip:bob@10.0.0.2"]
    assert reply.header("X-Why") == "test"


@pytest.mark.parametrize("queued", [
    [("X-One", "1"), ("X-Two", "2")],  # pairs only: copied as they are
    [("X-One", "1"), "X-Two: 2\r\n"],  # a whole line among them: split
    ["X-One: 1\r\n", "X-Two:2"],
])
def test_queued_reply_headers_as_pairs_or_lines(queued: list[object]) -> None:
    core, tr = offline_core(("sl", kemi_sl))
    ctx = context(core, request("REGISTER", "sip:127.0.0.1", 5070))
    ctx.extra["reply_headers"] = list(queued)
    assert kemi_sl.sl_send_reply(ctx, 200, "OK") == 1
    reply = tr.sent[0].msg
    assert (reply.header("X-One"), reply.header("X-Two")) == ("1", "2")
    assert ctx.extra["reply_headers"] == queued  # the queue itself is left as it was


def test_reply_error_default_and_known_error() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    ctx = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070))
    kemi_sl.sl_reply_error(ctx)  # Kamailio 5.6's words, its internal error number 1
    assert (tr.sent[-1].msg.status, tr.sent[-1].msg.reason) == (
        500, "I'm terribly sorry, server error occurred (1/SL)")
    ctx.extra["last_error"] = (478, "Unresolvable destination")
    kemi_sl.sl_reply_error(ctx)
    assert (tr.sent[-1].msg.status, tr.sent[-1].msg.reason) == (
        478, "Unresolvable destination (478/SL)")


def test_send_reply_uses_tm_when_a_transaction_exists() -> None:
    core, tr = offline_core(("sl", kemi_sl))

    class FakeTm:  # a test double of tm's service API
        replied: list[tuple[int, str]] = []

        def has_transaction(self, ctx: object) -> bool:
            return True

        def t_reply(self, ctx: object, code: int, reason: str) -> int:
            self.replied.append((code, reason))
            return 1

    tm = FakeTm()
    core.provide("tm", tm)
    ctx = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070))
    assert kemi_sl.send_reply(ctx, 180, "Ringing") == 1
    assert tm.replied == [(180, "Ringing")] and tr.sent == []
    kemi_sl.sl_send_reply(ctx, 180, "Ringing")  # sl_send_reply is always stateless
    assert len(tr.sent) == 1


@pytest.mark.parametrize("queued", [
    None,  # nothing queued by the script: the usual registrar 200
    [("X-One", "1")],
    ["X-One: 1\r\n"],
])
def test_service_reply_adds_headers_after_the_queued_ones(queued: list[object] | None) -> None:
    core, tr = offline_core(("sl", kemi_sl))
    api = core.require("sl", SlApi)
    raw = request("REGISTER", "sip:127.0.0.1", 5070)
    ctx = context(core, raw)
    if queued is not None:
        ctx.extra["reply_headers"] = list(queued)
    added = [("Contact", "<sip:a@10.0.0.1>;expires=60"), ("X-Two", "2")]
    assert api.send_reply(ctx, 200, "OK", added) == 1
    reply = tr.sent[0].msg
    names = [k for k in reply.header_keys if k in ("x-one", "contact", "x-two")]
    assert names == ([] if queued is None else ["x-one"]) + ["contact", "x-two"]
    assert reply.header("Contact") == "<sip:a@10.0.0.1>;expires=60"
    # the script's queue is left as it was (none made when there was none)
    assert ctx.extra.get("reply_headers") == queued
    # the same reply as queueing the headers for sl_send_reply (what registrar did before)
    ctx2 = context(core, raw)
    ctx2.extra["reply_headers"] = [*(queued or []), *added]
    kemi_sl.sl_send_reply(ctx2, 200, "OK")
    assert tr.sent[1].data == tr.sent[0].data


def test_service_reply_through_tm_sees_the_headers_queued() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    seen: list[list[object]] = []

    class FakeTm:  # a test double of tm's service API: tm reads the queue when it replies
        def has_transaction(self, ctx: object) -> bool:
            return True

        def t_reply(self, ctx: MsgContext, code: int, reason: str) -> int:
            seen.append(list(ctx.extra["reply_headers"]))
            return 1

    core.provide("tm", FakeTm())
    ctx = context(core, request("REGISTER", "sip:127.0.0.1", 5070))
    ctx.extra["reply_headers"] = ["X-One: 1\r\n"]
    api = core.require("sl", SlApi)
    assert api.send_reply(ctx, 200, "OK", [("Contact", "<sip:a@10.0.0.1>")]) == 1
    assert api.send_reply(ctx, 200, "OK") == 1
    assert seen == [["X-One: 1\r\n", ("Contact", "<sip:a@10.0.0.1>")], ["X-One: 1\r\n"]]
    assert ctx.extra["reply_headers"] == ["X-One: 1\r\n"] and tr.sent == []


def test_exports_table_and_seed_aliases() -> None:
    core, _ = offline_core(("sl", kemi_sl))
    names = set(core.registry.module("sl"))
    assert {"sl_send_reply", "send_reply", "send_reply_mode", "sl_reply_error",
            "sl_forward_reply", "get_reply_totag", "sreply", "freply"} <= names


def test_sl_forward_reply_with_a_new_code_and_reason() -> None:
    core, tr = offline_core(("sl", kemi_sl))
    attach_dispatcher(core)
    reply = (
        "SIP/2.0 180 Ringing\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKkemi1\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller1;rport=40000;received=127.0.0.1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n"
        "Call-ID: fwd1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    ctx = context(core, reply)
    assert kemi_sl.sl_forward_reply(ctx, "183", "Session Progress") == 1
    (sent,) = tr.sent
    assert (sent.host, sent.port) == ("127.0.0.1", 40000)  # the caller's Via, rport
    assert sent.msg.first_line == "SIP/2.0 183 Session Progress"
    assert [v.branch for v in sent.msg.vias] == ["z9hG4bKcaller1"]  # our Via popped
    # Another class than the reply's is refused, nothing sent.
    ctx = context(core, reply)
    assert kemi_sl.sl_forward_reply(ctx, "200", "OK") == -1 and len(tr.sent) == 1


def test_each_reply_counts_in_its_code_or_class_counter() -> None:
    """sl_send_reply counts through the per-code table (for_code), built once from the rule:
    Kamailio's own codes by themselves, other codes in their class, beyond 6xx in xxx."""
    from kemi_sl.stats import CODES

    core, tr = offline_core(("sl", kemi_sl))
    stats = kemi_sl._state.stats
    assert stats is not None
    assert set(stats.for_code) == set(range(100, 700))
    for code in range(100, 700):
        want = stats.by_code[code] if code in CODES else stats.by_class[code // 100 - 1]
        assert stats.for_code[code] is want is stats.counter_of(code)
    assert stats.counter_of(700) is stats.other is stats.counter_of(99)
    before = {code: stats.for_code[code].value for code in (200, 299, 404, 486)}
    for code in (200, 299, 404, 486, 486):
        ctx = context(core, request("OPTIONS", "sip:kemi@127.0.0.1", 5070, call_id=f"k{code}"))
        assert kemi_sl.sl_send_reply(ctx, code, "X") == 1
    after = {code: stats.for_code[code].value for code in before}
    # 299 and 486 share their class's counter with nothing else sent here
    assert {c: after[c] - before[c] for c in before} == {200: 1, 299: 1, 404: 1, 486: 2}
    assert len(tr.sent) == 5
