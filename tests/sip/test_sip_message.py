"""SipMsg: first line, header access, typed values, edits, serialization."""

from __future__ import annotations

import pytest

from kemi_core.sip import SipParseError, parse_datagram


def test_request_first_line(invite: bytes) -> None:
    m = parse_datagram(invite)
    assert m.is_request
    assert m.method == "INVITE"
    assert m.ruri == "sip:bob@biloxi.example.com"
    assert m.version == "SIP/2.0"
    assert m.status == 0
    assert m.uri.user == "bob" and m.uri.host == "biloxi.example.com"


def test_reply_first_line(reply200: bytes) -> None:
    m = parse_datagram(reply200)
    assert not m.is_request
    assert (m.status, m.reason, m.version) == (200, "OK", "SIP/2.0")
    assert m.method == "INVITE"  # from CSeq
    with pytest.raises(SipParseError):
        _ = m.uri


def test_typed_values(invite: bytes) -> None:
    m = parse_datagram(invite)
    v = m.via
    assert (v.protocol, v.transport, v.host, v.port) == (
        "SIP/2.0",
        "UDP",
        "pc33.atlanta.example.com",
        5060,
    )
    assert v.branch == "z9hG4bK776asdhds" and v.rport is True and v.received is None
    assert m.from_.display == "Alice" and m.from_.tag == "1928301774"
    assert m.from_.uri is not None and m.from_.uri.user == "alice"
    assert m.to.display == "Bob" and m.to.tag is None
    assert (m.cseq.number, m.cseq.method) == (314159, "INVITE")
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.max_forwards == 70
    assert m.content_type == "application/sdp"
    assert m.content_length == len(m.body) > 0
    assert m.expires is None
    assert [c.uri_text for c in m.contacts] == ["sip:alice@pc33.atlanta.example.com;transport=udp"]
    assert m.contacts[0].uri is not None and m.contacts[0].uri.transport == "udp"
    assert m.routes == [] and m.record_routes == []


def test_header_access(invite: bytes) -> None:
    m = parse_datagram(invite)
    assert m.header("call-id") == m.header("i") == m.header("CALL-ID") == m.call_id
    assert m.header("X-Nope") is None
    assert m.headers("Allow") == ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REFER", "NOTIFY"]
    assert m.headers("supported") == ["replaces", "timer"]
    assert m.headers("user-agent") == ["kemi-bench/1.0"]
    assert m.has_header("v") and not m.has_header("route")
    assert m.header_count("via") == 1
    names = [n for n, _ in m.iter_headers()]
    assert names[0] == "Via" and names[-1] == "Content-Length" and len(names) == 12


def test_lines_of_gives_the_raw_lines_of_those_headers_in_order() -> None:
    m = parse_datagram(b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                       b"t:  <sip:a@example.com>\r\nm: <sip:a@h>\r\nCall-ID: c\r\n"
                       b"CSeq: 1 REGISTER\r\nContact: <sip:b@h>\r\nFrom: <sip:a@example.com>;tag=1"
                       b"\r\nContent-Length: 0\r\n\r\n")
    wanted = frozenset(("to", "contact", "expires"))
    lines = [line.rstrip("\r") for line in m.lines_of(wanted)]  # (a received line keeps its CR)
    assert lines == ["t:  <sip:a@example.com>", "m: <sip:a@h>", "Contact: <sip:b@h>"]
    assert m.lines_of(frozenset(("route",))) == ()
    m.append_header("Expires", "60")
    assert m.lines_of(wanted)[-1].rstrip("\r") == "Expires: 60"


def test_multi_via_reply(reply200: bytes) -> None:
    m = parse_datagram(reply200)
    assert m.header_count("via") == 2
    vias = m.vias
    assert [v.host for v in vias] == [
        "server10.biloxi.example.com",
        "bigbox3.site3.atlanta.example.com",
        "pc33.atlanta.example.com",
    ]
    assert vias[0].received == "192.0.2.3"
    assert vias[2].received == "192.0.2.1" and vias[2].branch == "z9hG4bK776asdhds"
    assert m.via == vias[0]


def test_unedited_is_identical(invite: bytes, reply200: bytes, register: bytes) -> None:
    for raw in (invite, reply200, register):
        m = parse_datagram(raw)
        _ = (m.via, m.from_, m.to, m.cseq, m.contacts)
        assert m.to_bytes() == raw


def test_edits_keep_other_bytes(invite: bytes) -> None:
    m = parse_datagram(invite)
    m.prepend_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew")
    m.set_max_forwards(m.max_forwards - 1)  # type: ignore[operator]
    out = m.to_bytes()
    assert out.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1")
    assert b"Max-Forwards: 69\r\n" in out
    assert (
        out.replace(b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew\r\n", b"").replace(
            b"Max-Forwards: 69", b"Max-Forwards: 70"
        )
        == invite
    )
    m2 = parse_datagram(out)
    assert [v.branch for v in m2.vias] == ["z9hG4bKnew", "z9hG4bK776asdhds"]
    assert m2.max_forwards == 69


def test_pop_via_from_comma_list(reply200: bytes) -> None:
    m = parse_datagram(reply200)
    top = m.pop_via()
    assert top is not None and top.host == "server10.biloxi.example.com"
    assert m.header_count("via") == 1
    second = m.pop_via()
    assert second is not None and second.host == "bigbox3.site3.atlanta.example.com"
    assert m.header_count("via") == 1  # the line still holds the third value
    assert m.via.host == "pc33.atlanta.example.com"
    assert m.pop_via() is not None and m.pop_via() is None
    with pytest.raises(SipParseError):
        _ = m.via


def test_set_ruri(invite: bytes) -> None:
    m = parse_datagram(invite)
    m.ruri = "sip:carol@chicago.example.com;transport=tcp"
    assert m.uri.user == "carol" and m.uri.transport == "tcp"
    out = m.to_bytes()
    assert out.split(b"\r\n", 1)[0] == b"INVITE sip:carol@chicago.example.com;transport=tcp SIP/2.0"
    assert out.split(b"\r\n", 1)[1] == invite.split(b"\r\n", 1)[1]
    with pytest.raises(ValueError):
        m.set_ruri("sip:a@b\r\nX: y")


def test_header_add_remove(invite: bytes) -> None:
    m = parse_datagram(invite)
    m.append_header("X-Last", "1")
    m.insert_header("X-First", "2")
    assert m.add_header_after("cseq", "X-After-CSeq", "3")
    assert m.add_header_before("Call-ID", "X-Before-Callid", "4")
    assert not m.add_header_after("X-Missing", "X-No", "5")
    names = [n for n, _ in m.iter_headers()]
    assert names[0] == "X-First" and names[-1] == "X-Last"
    assert names[names.index("CSeq") + 1] == "X-After-CSeq"
    assert names[names.index("Call-ID") - 1] == "X-Before-Callid"
    assert m.remove_header("x-first") == 1
    assert m.remove_header("X-Missing") == 0
    m2 = parse_datagram(m.to_bytes())
    assert m2.header("x-last") == "1" and m2.header("X-After-CSeq") == "3"
    assert m2.body == m.body
    with pytest.raises(ValueError):
        m.append_header("Bad Name", "x")
    with pytest.raises(ValueError):
        m.append_header("X-Inject", "a\r\nVia: evil")


def test_remove_every_line(reply200: bytes) -> None:
    m = parse_datagram(reply200)
    assert m.remove_header("Via") == 2
    assert m.vias == []


def test_set_body(invite: bytes) -> None:
    m = parse_datagram(invite)
    m.set_body(b"hello", "text/plain")
    m2 = parse_datagram(m.to_bytes())
    assert m2.body == b"hello" and m2.content_length == 5 and m2.content_type == "text/plain"
    m.set_body(b"")
    m3 = parse_datagram(m.to_bytes())
    assert m3.body == b"" and m3.content_length == 0 and m3.content_type is None


def test_set_max_forwards_adds_header(reply200: bytes) -> None:
    m = parse_datagram(reply200)
    assert m.max_forwards is None
    m.set_max_forwards(10)
    assert m.max_forwards == 10 and m.header_count("max-forwards") == 1


def test_copy_is_independent(invite: bytes) -> None:
    m = parse_datagram(invite)
    c = m.copy()
    c.prepend_via("SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKc")
    c.ruri = "sip:x@y"
    assert m.to_bytes() == invite
    assert len(c.vias) == 2 and len(m.vias) == 1


def test_cache_follows_edits(invite: bytes) -> None:
    m = parse_datagram(invite)
    assert m.max_forwards == 70
    m.set_max_forwards(3)
    assert m.max_forwards == 3
    m.remove_header("Max-Forwards")
    assert m.max_forwards is None
