"""SipMsg.uri_shared (the Request-URI for a reader that changes nothing, rr's checks) reads as
SipMsg.uri does: the same fields, the same errors; it is the parsed form uri keeps when there
is one, and it never fills or changes msg.uri."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipParseError, parse_datagram

RURIS = ["sip:bob@example.com", "sips:bob@example.com:5061;transport=tcp", "sip:127.0.0.1:5090",
         "sip:a@b?subject=x", "tel:+1234", "http://x", "sip:", "sip:@h", "sip:[::1]:5;lr",
         "sip:b@h:99999", "SIP:B@H;LR"]  # fmt: skip


def request(ruri: str) -> bytes:
    return (f"OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            "CSeq: 1 OPTIONS\r\n\r\n").encode()


def outcome(read: object) -> object:
    try:
        u = read()  # type: ignore[operator]
    except SipParseError as exc:
        return ("raised", exc.status, exc.reason)
    return (u.scheme, u.user, u.password, u.host, u.port, u.params, u.headers)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.sampled_from(RURIS),
                 st.text("abcsip:@;=.?&[]+-_0123456789", min_size=1, max_size=20)))
def test_reads_as_uri(ruri: str) -> None:
    try:
        shared_msg, msg = parse_datagram(request(ruri)), parse_datagram(request(ruri))
    except SipParseError:
        return
    assert outcome(lambda: shared_msg.uri_shared) == outcome(lambda: msg.uri)
    assert "uri" not in shared_msg._cache  # (msg.uri still makes its own copy)


def test_the_kept_form_and_the_shared_one() -> None:
    a, b = parse_datagram(request("sip:bob@example.com")), parse_datagram(request("sip:bob@example.com"))
    assert a.uri_shared is b.uri_shared  # one parse for one text
    mine = a.uri
    assert a.uri_shared is mine  # the parsed form uri keeps (it may have been changed)
    a.set_ruri("sip:carol@example.com")
    assert a.uri_shared.user == "carol"


def test_a_reply_has_none() -> None:
    reply = parse_datagram(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                           b"CSeq: 1 OPTIONS\r\n\r\n")
    with pytest.raises(SipParseError):
        reply.uri_shared  # noqa: B018
