"""Typed header values, one kind at a time, read through a parsed message."""

from __future__ import annotations

import pytest

from kemi_core.sip import SipMsg, SipParseError, parse_datagram
from kemi_core.sip.headers import parse_cseq, parse_name_addr, parse_via
from kemi_core.sip.syntax import split_commas

HEAD = (
    "OPTIONS sip:b@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n"
    "From: <sip:a@example.com>;tag=f\r\n"
    "To: <sip:b@example.com>\r\n"
    "Call-ID: c1@example.com\r\n"
    "CSeq: 1 OPTIONS\r\n"
)


def msg(*extra: str, head: str = HEAD) -> SipMsg:
    return parse_datagram((head + "".join(e + "\r\n" for e in extra) + "\r\n").encode())


def err(fn: object) -> int:
    with pytest.raises(SipParseError) as ei:
        fn()  # type: ignore[operator]
    return ei.value.status


# ------------------------------------------------------------------------------- Via
def test_via_fields() -> None:
    v = parse_via(
        "SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK77;received=192.0.2.4;rport=5070;ttl=3"
    )
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "pc33.example.com", 5066)
    assert (v.branch, v.received, v.rport) == ("z9hG4bK77", "192.0.2.4", 5070)
    assert v.params == {"branch": "z9hG4bK77", "received": "192.0.2.4", "rport": "5070", "ttl": "3"}
    assert v.sent_by == "pc33.example.com:5066"


def test_via_rport_flag_and_absent() -> None:
    assert parse_via("SIP/2.0/TCP h;rport;branch=z9hG4bKb").rport is True
    v = parse_via("SIP/2.0/TCP h")
    assert (v.rport, v.branch, v.received, v.port, v.params) == (None, None, None, None, {})
    assert err(lambda: parse_via("SIP/2.0/UDP h;rport=abc").rport) == 400


def test_via_ipv6_and_lws_and_case() -> None:
    v = parse_via("SIP / 2.0 / tls [2001:db8::9]:5061 ; Branch = z9hG4bKc ; received=[2001:db8::1]")
    assert (v.transport, v.host, v.port) == ("TLS", "[2001:db8::9]", 5061)
    assert v.branch == "z9hG4bKc" and v.received == "[2001:db8::1]"
    assert parse_via("SIP/2.0/WSS h.example;branch=z9hG4bKd").transport == "WSS"


def test_several_vias_per_line_and_lines() -> None:
    m = msg(head=HEAD.replace(
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n",
        "Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/TCP b.example:5070;branch=z9hG4bK2\r\n"
        "v: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n",
    ))  # fmt: skip
    assert [v.host for v in m.vias] == ["a.example", "b.example", "c.example"]
    assert m.via.host == "a.example" and m.header_count("via") == 2
    assert m.headers("via")[1] == "SIP/2.0/TCP b.example:5070;branch=z9hG4bK2"


@pytest.mark.parametrize(
    "value",
    ["", "SIP/2.0/UDP", "SIP/2.0 h", "SIP/2.0/UDP h:99999", "SIP/2.0/UDP h;;branch=x",
     "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h j", "SIP/2.0/UDP [::1", "SIP/2.0/UDP h<x"],
)  # fmt: skip
def test_bad_vias(value: str) -> None:
    assert err(lambda: parse_via(value)) == 400


# ------------------------------------------------------------------------- name-addr
def test_name_addr_forms() -> None:
    na = parse_name_addr('"Alice \\"A\\" Liddell" <sip:alice@example.com;lr>;tag=88;x')
    assert na.display == 'Alice "A" Liddell' and na.uri_text == "sip:alice@example.com;lr"
    assert na.tag == "88" and na.params == {"tag": "88", "x": None}
    assert na.uri is not None and na.uri.params == {"lr": None}
    tok = parse_name_addr("Bob  Smith <sip:bob@example.com>")
    assert tok.display == "Bob Smith" and tok.tag is None
    spec = parse_name_addr("sip:carol@example.com;tag=9;foo=bar")
    assert spec.display is None and spec.uri_text == "sip:carol@example.com"
    assert spec.params == {"tag": "9", "foo": "bar"}
    assert parse_name_addr('"" <sip:x@y>').display == ""
    assert parse_name_addr("<sip:x@y> ; Tag = ab ").tag == "ab"


def test_name_addr_quoted_params_and_unknown_scheme() -> None:
    na = parse_name_addr('<sip:x@y>;+sip.instance="<urn:uuid:1;2>";expires=5')
    assert na.params == {"+sip.instance": '"<urn:uuid:1;2>"', "expires": "5"}
    assert parse_name_addr("<urn:service:sos>").uri is None


def test_str_round_trip() -> None:
    na = parse_name_addr('"A" <sip:a@b>;tag=1')
    assert str(na) == '"A" <sip:a@b>;tag=1'
    assert parse_name_addr(str(na)) == na


@pytest.mark.parametrize(
    "value",
    ['"unterminated <sip:a@b>', "<sip:a@b", "Bell, Alexander <sip:a@b>", "< sip:a@b >",
     "<sip:a@b> junk", "sip:a@b?x=y", "noscheme", "<sip:a@b>;tag=", "<sip:a@b>;;tag=1",
     '"a" sip:a@b', "*"],
)  # fmt: skip
def test_bad_name_addrs(value: str) -> None:
    assert err(lambda: parse_name_addr(value)) == 400


def test_bad_uri_inside_is_found_on_access() -> None:
    na = parse_name_addr("<sip:a@b:99999>")
    assert err(lambda: na.uri) == 400


def test_contacts_star_and_lists() -> None:
    assert [c.is_star for c in msg("Contact: *", "Expires: 0").contacts] == [True]
    assert err(lambda: msg("Contact: *, <sip:a@b>").contacts) == 400
    m = msg('Contact: "x, y" <sip:a@b?h=1,2>;q=0.5, <sip:c@d>', "m: sip:e@f;expires=3")
    assert [c.uri_text for c in m.contacts] == ["sip:a@b?h=1,2", "sip:c@d", "sip:e@f"]
    assert m.contacts[0].display == "x, y" and m.contacts[2].params == {"expires": "3"}


def test_routes_and_record_routes() -> None:
    m = msg("Route: <sip:p1@a;lr>, <sip:p2@b;lr>", "Route: <sip:p3@c;lr>",
            "Record-Route: <sip:rr@d;lr;ftag=x>")  # fmt: skip
    assert [r.uri.host for r in m.routes if r.uri] == ["a", "b", "c"]
    assert m.record_routes[0].uri is not None and m.record_routes[0].uri.params["ftag"] == "x"
    assert msg().routes == []


# ---------------------------------------------------------------- scalar headers
def test_cseq() -> None:
    c = parse_cseq("0009  INVITE")
    assert (c.number, c.method, str(c)) == (9, "INVITE", "9 INVITE")
    assert parse_cseq("2147483647 FOO").number == 2**31 - 1
    for bad in ("", "1", "x INVITE", "1 INV ITE", "2147483648 INVITE", "-1 INVITE", "1 IN<VITE"):
        assert err(lambda bad=bad: parse_cseq(bad)) == 400


def test_call_id() -> None:
    assert msg().call_id == "c1@example.com"
    assert (
        msg(head=HEAD.replace("Call-ID: c1@example.com", "i: abc def")).header("call-id")
        == "abc def"
    )
    assert (
        err(lambda: msg(head=HEAD.replace("Call-ID: c1@example.com", "i: abc def")).call_id) == 400
    )


def test_max_forwards_content_length_expires_type() -> None:
    m = msg("Max-Forwards: 0070", "Expires: 3600", "c: application/sdp ; charset=x",
            "Content-Length: 0")  # fmt: skip
    assert (m.max_forwards, m.expires, m.content_length) == (70, 3600, 0)
    assert m.content_type == "application/sdp ; charset=x"
    assert (msg().max_forwards, msg().expires, msg().content_length, msg().content_type) == (
        None, None, None, None,
    )  # fmt: skip
    assert err(lambda: msg("Max-Forwards: 256").max_forwards) == 400
    assert err(lambda: msg("Max-Forwards: -1").max_forwards) == 400
    assert err(lambda: msg("Expires: soon").expires) == 400
    assert msg("Expires: 4294967295").expires == 2**32 - 1


def test_option_tag_lists() -> None:
    m = msg("Require: 100rel, timer", "Require: precondition", "k: replaces , gruu",
            "Proxy-Require: sec-agree")  # fmt: skip
    assert m.require == ["100rel", "timer", "precondition"]
    assert m.supported == ["replaces", "gruu"] and m.proxy_require == ["sec-agree"]
    assert msg().require == []
    assert err(lambda: msg("Require: a b").require) == 400


def test_split_commas_respects_quotes_and_brackets() -> None:
    assert split_commas('"a,b" <sip:x?h=1,2>, c,,d ,') == ['"a,b" <sip:x?h=1,2>', "c", "d"]
    assert err(lambda: split_commas('"open, x')) == 400
    assert split_commas('"open, x', strict=False) == ['"open, x']
