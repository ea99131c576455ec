"""build_reply: RFC 3261 8.2.6 replies."""

from __future__ import annotations

import pytest

from kemi_core.sip import build_reply, parse_datagram


def test_reply_copies_headers_in_order(invite: bytes) -> None:
    req = parse_datagram(invite)
    req.prepend_via("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop")
    raw = build_reply(req, 486, "Busy Here", to_tag="xyz", headers=[("Retry-After", "60")])
    rep = parse_datagram(raw)
    assert not rep.is_request and (rep.status, rep.reason) == (486, "Busy Here")
    assert [v.branch for v in rep.vias] == ["z9hG4bKtop", "z9hG4bK776asdhds"]
    assert rep.from_ == req.from_
    assert rep.to.tag == "xyz" and rep.to.uri_text == req.to.uri_text
    assert rep.call_id == req.call_id and rep.cseq == req.cseq
    assert rep.header("Retry-After") == "60"
    assert rep.content_length == 0 and rep.body == b""
    assert not rep.has_header("contact") and not rep.has_header("max-forwards")


def test_no_tag_for_100_or_when_present(invite: bytes, reply200: bytes) -> None:
    req = parse_datagram(
        invite.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nTimestamp: 54\r\n")
    )
    rep = parse_datagram(build_reply(req, 100, "Trying", to_tag="abc"))
    assert rep.to.tag is None
    assert rep.header("timestamp") == "54"
    tagged = invite.replace(
        b"<sip:bob@biloxi.example.com>\r\n", b"<sip:bob@biloxi.example.com>;tag=old\r\n"
    )
    rep = parse_datagram(build_reply(parse_datagram(tagged), 200, "OK", to_tag="new"))
    assert rep.to.tag == "old"
    assert b"Timestamp" not in build_reply(req, 200, "OK")


def test_reply_with_body(register: bytes) -> None:
    req = parse_datagram(register)
    raw = build_reply(req, 200, "OK", to_tag="t1", body=b"v=0\r\n", content_type="application/sdp")
    rep = parse_datagram(raw)
    assert rep.body == b"v=0\r\n" and rep.content_type == "application/sdp"
    assert rep.content_length == 5
    assert rep.cseq.method == "REGISTER"


def test_reply_to_malformed_to_and_compact_names(invite: bytes) -> None:
    # A 400 must be buildable for a request whose To does not parse.
    bad = invite.replace(
        b'To: "Bob" <sip:bob@biloxi.example.com>', b"t: < sip:bob@biloxi.example.com >"
    )
    req = parse_datagram(bad)
    raw = build_reply(req, 400, "Bad To", to_tag="z")
    assert b"\r\nt: < sip:bob@biloxi.example.com >;tag=z\r\n" in raw
    tagged = bad.replace(b"example.com >", b"example.com > ; TAG=1")
    assert b";tag=z" not in build_reply(parse_datagram(tagged), 400, "Bad To", to_tag="z")


def test_reply_keeps_via_lines_as_written(reply200: bytes) -> None:
    # Vias of a (here: proxied) message are copied line by line, comma lists included.
    req = parse_datagram(reply200.replace(b"SIP/2.0 200 OK", b"BYE sip:x@y SIP/2.0").replace(
        b"CSeq: 314159 INVITE", b"CSeq: 314160 BYE"))  # fmt: skip
    rep = parse_datagram(build_reply(req, 481, "Call/Transaction Does Not Exist"))
    assert rep.headers("via") == req.headers("via") and len(rep.vias) == 3
    assert rep.reason == "Call/Transaction Does Not Exist" and rep.method == "BYE"
    assert not rep.has_header("contact")


def test_reply_refuses_bad_arguments(invite: bytes) -> None:
    req = parse_datagram(invite)
    with pytest.raises(ValueError):
        build_reply(req, 99, "x")
    with pytest.raises(ValueError):
        build_reply(req, 200, "OK\r\nX: y")
    with pytest.raises(ValueError):
        build_reply(req, 200, "OK", headers=[("X", "a\nb")])
