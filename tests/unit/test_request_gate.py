"""kemi_core.runtime.request_gate without a network: what reaches the script and what is a 400
(the side-by-side proof against Kamailio 5.6 is tests/e2e/test_malformed_vs_kamailio.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.runtime import request_gate
from kemi_core.runtime.request_gate import _walk, check_request_headers
from kemi_core.sip import SipMsg, SipParseError, parse_datagram, syntax
from kemi_core.testing import request_text as request

VIA = "Via: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1"


def gate(text: str) -> str | None:
    """None when the request passes, else the reason of its 400."""
    try:
        check_request_headers(parse_datagram(text.replace("PORT", "5").encode()))
    except SipParseError as exc:
        assert exc.status == 400
        return exc.reason
    return None


@pytest.mark.parametrize("text", [
    request(), request(cseq="abc INVITE"), request(call_id=""), request(frm="garbage"),
    request(to="garbage"), request(to="*"), request(extra="Call-ID: second\r\nTo: <>\r\nVia: x"),
    request(via=VIA + "\r\nCSeq: 2 OPTIONS"),  # the second CSeq comes after the walk's end
    request(via=VIA + ", SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK2"),
])
def test_passes(text: str) -> None:
    assert gate(text) is None


@pytest.mark.parametrize(("text", "reason"), [
    (request(call_id=None), "Missing call-id header"),
    (request().replace("CSeq: 1 OPTIONS\r\n", ""), "Missing cseq header"),
    (request(via=VIA + "\r\nFrom: <sip:b@x>;tag=2"), "Multiple from headers"),
    (request(via=VIA + "\r\nMax-Forwards: 1\r\nMax-Forwards: 2"), "Multiple max-forwards headers"),
    (request(cseq="1 OPTIONS x"), "Malformed CSeq"), (request(to=""), "Empty To header"),
    (request(to="<sip:x"), "Missing '>'"),
    (request(via=VIA + "\r\nVia: garbage"), "Malformed Via"),
    (request(via=VIA + ","), "Empty Via element"),
    (request(via="Via: SIP/3.0/UDP 127.0.0.1:5;branch=z9hG4bK1"), "Bad Via protocol version"),
    (request().replace("OPTIONS sip:", "OPTIONS  sip:", 1), "Malformed request line"),
])
def test_refused(text: str, reason: str) -> None:
    assert gate(text) == reason


# The usual layout is judged once per layout (a bounded cache) without the header-by-header
# walk: whatever the lines, the answer must be the walk's.
LINES = [
    VIA, "Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK9", "Via: garbage", "v: SIP/3.0/UDP h;branch=x",
    "From: <sip:a@example.com>;tag=1", "f: <sip:b@example.com>;tag=2", "To: <sip:u@127.0.0.1>",
    "To: <sip:x", "t: garbage", "Call-ID: c1", "i: c2", "CSeq: 1 OPTIONS", "CSeq: 1 OPTIONS x",
    "Max-Forwards: 70", "Max-Forwards: 69", "Subject: s", "Contact: <sip:a@10.0.0.1>",
]


def walk_answer(msg: SipMsg) -> str | None:
    try:
        _walk(msg, msg.header_keys, msg.via)
    except SipParseError as exc:
        return exc.reason
    return None


REQUIRED = ["From: <sip:a@example.com>;tag=1", "To: <sip:u@127.0.0.1>", "Call-ID: c1",
            "CSeq: 1 OPTIONS"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(LINES), max_size=5).flatmap(
    lambda extra: st.permutations([VIA, *REQUIRED, *extra])))
def test_same_answer_as_the_walk(lines: list[str]) -> None:
    raw = "OPTIONS sip:u@127.0.0.1 SIP/2.0\r\n" + "".join(f"{x}\r\n" for x in lines) + "\r\n"
    for _ in range(2):  # the layout's first sight, then its cached answer
        msg = parse_datagram(raw.encode())
        try:
            expected = walk_answer(msg)
        except SipParseError:
            return  # no top Via to read: the gate's first step already refuses it
        try:
            check_request_headers(msg)
            got = None
        except SipParseError as exc:
            got = exc.reason
        assert got == expected


# The compiled usual case (syntax.usual_request) must answer as the Python checks do: each
# request below is judged twice (the layout's first sight, then the compiled call) with and
# without it.
USUAL_CASES = [
    request(), request(cseq="1\tOPTIONS"), request(cseq="1\u00a0OPTIONS"), request(cseq="1 OPTIONS x"),
    request(cseq=" 1   OPTIONS "), request(cseq="1"),
    request(via="Via: sip/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1"),
    request(via="Via: \u017fIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1"),
    request(via="Via: SIP/2.1/UDP 127.0.0.1:5;branch=z9hG4bK1"),
    request(via=VIA + ", SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK2"), request(via=VIA + ","),
    request().replace("OPTIONS sip:", "OPTIONS  sip:", 1),
    request().replace("SIP/2.0\r\n", "SIP/2.0  \r\n", 1),
    request(to="<sip:x"), request(to="garbage"), request(extra="To: <sip:second@x>"),
]


def gate_twice(text: str) -> list[str | None]:
    return [gate(text), gate(text)]


@pytest.mark.skipif(syntax.usual_request is None, reason="the compiled helpers are not built")
@pytest.mark.parametrize("text", USUAL_CASES)
def test_compiled_usual_case_as_python(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = gate_twice(text)
    monkeypatch.setattr(request_gate, "usual_request", None)
    assert compiled == gate_twice(text)


@pytest.mark.skipif(syntax.usual_request is None, reason="the compiled helpers are not built")
def test_compiled_usual_case_takes_the_usual_request() -> None:
    assert syntax.usual_request is not None
    gate(request())  # the layout's first sight
    layouts = request_gate._LAYOUTS
    assert syntax.usual_request(parse_datagram(request().replace("PORT", "5").encode()),
                                layouts) is True
    for text in (request(cseq="1 OPTIONS x"), request(via=VIA + ", SIP/2.0/TCP h;branch=z9hG4bK2"),
                 request().replace("OPTIONS sip:", "OPTIONS  sip:", 1)):
        msg = parse_datagram(text.replace("PORT", "5").encode())
        assert syntax.usual_request(msg, layouts) is False
