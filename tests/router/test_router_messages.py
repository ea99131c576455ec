"""Messages as tests write them: wire_bytes fixes line ends and Content-Length; the replies a
downstream UAS sends; the outcome's log lines; module timers on the router's clock."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing.messages import default_reason, downstream_reply, wire_bytes
from kemi_core.testing.outcome import LogLines

from .conftest import FAILOVER_CFGS, invite


def test_lf_becomes_crlf_and_content_length_is_set_from_the_body() -> None:
    data = wire_bytes("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\nhello\n")
    assert data == (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                    b"Content-Length: 7\r\n\r\nhello\r\n")


def test_wrong_or_compact_content_length_is_corrected_in_place() -> None:
    data = wire_bytes(b"MESSAGE sip:a@b SIP/2.0\r\nl: 99\r\nContent-Length: 3\r\nX: y\r\n\r\nabcd")
    assert data == b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 4\r\nX: y\r\n\r\nabcd"


def test_indented_text_without_blank_line_is_a_message_without_body() -> None:
    data = wire_bytes("""
        OPTIONS sip:a@b SIP/2.0
        Subject: folded
          continued
        """)
    assert data == (b"OPTIONS sip:a@b SIP/2.0\r\nSubject: folded\r\n  continued\r\n"
                    b"Content-Length: 0\r\n\r\n")
    assert parse_datagram(data).header("subject") is not None


def test_invite_of_the_tests_parses_with_its_sdp() -> None:
    msg = parse_datagram(wire_bytes(invite()))
    assert msg.content_length == len(msg.body) and msg.body.endswith(b"RTP/AVP 0\r\n")


def test_downstream_reply_copies_vias_and_record_route_and_tags_the_to() -> None:
    req = parse_datagram(wire_bytes(invite()).replace(
        b"Max-Forwards", b"Record-Route: <sip:10.0.0.1;lr>\r\nMax-Forwards"))
    ringing = parse_datagram(downstream_reply(req, 180, contact="<sip:uas@10.0.0.2>"))
    ok = parse_datagram(downstream_reply(req, 200, headers={"X-A": "1"}, body="v=0\n",
                                         contact="<sip:uas@10.0.0.2>"))
    busy = parse_datagram(downstream_reply(req, 486, headers=["Retry-After: 30"]))
    assert ringing.reason == "Ringing" and ok.reason == "OK" and busy.reason == "Busy Here"
    assert ringing.to.tag == ok.to.tag == busy.to.tag  # one UAS, one tag per transaction
    assert ok.header("record-route") == "<sip:10.0.0.1;lr>" and busy.header("record-route") is None
    assert ok.header("contact") == "<sip:uas@10.0.0.2>" and busy.header("contact") is None
    assert ok.header("content-type") == "application/sdp" and ok.body == b"v=0\r\n"
    assert ok.header("x-a") == "1" and busy.header("retry-after") == "30"
    assert [v.branch for v in ok.vias] == [v.branch for v in req.vias]
    assert default_reason(499) == "Request Failure"


def test_log_lines_match_by_substring() -> None:
    logs = LogLines(["relaying INVITE to primary", "second"])
    assert "relaying INVITE" in logs and "relaying INVITE to primary\n" in logs
    assert "missing" not in logs and 3 not in logs
    assert str(logs) == "relaying INVITE to primary\nsecond" and logs.splitlines() == list(logs)


def test_module_timers_fire_on_advance(kemi_router: Any) -> None:
    """What a module does with core.clock (usrloc expiry, probing ...) runs when the test moves
    time, at the moments it asked for."""
    router = kemi_router(FAILOVER_CFGS["native"])
    clock = router.core.clock
    seen: list[tuple[str, float]] = []
    start = router.now
    clock.call_every(5.0, lambda: seen.append(("sweep", clock.now() - start)))
    router.core.call_later(7.5, lambda: seen.append(("once", clock.now() - start)))
    ticks: list[float] = []
    router.core.add_timer_handler(ticks.append)
    router.advance(12.0)
    assert seen == [("sweep", 5.0), ("once", 7.5), ("sweep", 10.0)]
    assert len(ticks) == pytest.approx(12.0 / 0.05, abs=1)
    assert router.now == start + 12.0


def test_a_failing_module_timer_fails_the_step(kemi_router: Any) -> None:
    from kemi_core.testing.router import ScriptFailure

    router = kemi_router(FAILOVER_CFGS["native"])

    def expire() -> None:
        raise KeyError("contact")

    router.core.clock.call_later(1.0, expire)
    with pytest.raises(ScriptFailure, match=r"(?s)advancing 2 s.*timer .*expire.*KeyError: 'contact'"):
        router.advance(2)


def test_dropped_reply_and_raw_bad_input(kemi_router: Any, tmp_path: Any) -> None:
    (tmp_path / "kamailio.cfg").write_text('''#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {
	if (is_method("MESSAGE")) { drop; }
	$du = "sip:127.0.0.1:5080";
	t_relay();
}
reply_route {
	if ($rs == 183) { drop; }
}
''')
    router = kemi_router(tmp_path / "kamailio.cfg")
    out = router.request(invite())
    assert not out.dropped and out.ctx is not None
    progress = router.reply(out.forwarded[0], 183, "Session Progress")
    assert progress.dropped and progress.replies == []
    ringing = router.reply(out.forwarded[0], 180)
    assert not ringing.dropped and [r.status for r in ringing.replies] == [180]
    message = invite().replace("INVITE", "MESSAGE")
    assert router.request(message).dropped
    no_call_id = b"".join(line for line in wire_bytes(invite()).splitlines(keepends=True)
                          if not line.startswith(b"Call-ID"))
    bad = router.request(no_call_id, raw=True)
    assert [r.status for r in bad.replies] == [400] and not bad.dropped and bad.forwarded == []
    noise = router.request(b"hello\r\n\r\n", raw=True)
    assert noise.sent == [] and noise.dropped


def test_shared_store_entries_expire_on_advance(kemi_router: Any) -> None:
    """State modules share between workers (registrations, nonces) expires on the router's
    clock: reads stop seeing it when its time comes, and the sweep (the main process's job in
    a server) runs its expiry callbacks."""
    from kemi_core.shared import shared_store

    router = kemi_router(FAILOVER_CFGS["native"])
    store = shared_store(router.core)
    expired: list[str] = []
    store.on_expire("location", lambda key, value: expired.append(key))
    table = store.table("location")
    table.put("alice", {"contact": "sip:alice@127.0.0.1:5070"}, ttl=60)
    table.put("bob", {"contact": "sip:bob@127.0.0.1:5072"}, ttl=3600)
    router.advance(59)
    assert table.get("alice") is not None and expired == []
    router.advance(2)
    assert table.get("alice") is None and table.get("bob") is not None
    assert expired == ["alice"]
