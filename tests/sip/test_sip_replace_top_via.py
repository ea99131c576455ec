"""SipMsg.replace_top_via (the ;received/;rport Via put on a request's copy) leaves the message
as pop_via + prepend_via would: the same bytes and the same Via values read after."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipMsg, parse_datagram

TOP = "SIP/2.0/UDP a.example:5060;branch=z9hG4bK1;received=10.0.0.1;rport=5070"
VIA_LINES = [
    "Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bK1;rport",
    "v: SIP/2.0/TCP b.example;branch=z9hG4bK2",
    "Via: SIP/2.0/UDP c.example;branch=z9hG4bK3, SIP/2.0/UDP d.example;branch=z9hG4bK4",
]
OTHER_LINES = [
    "Max-Forwards: 70",
    "From: <sip:alice@example.com>;tag=f1",
    "To: <sip:bob@example.com>",
    "Call-ID: c1@example.com",
    "CSeq: 1 INVITE",
    "Subject: x, y",
]


def _msg(others: list[str], vias: list[str], at: int) -> SipMsg:
    lines = list(others)
    for n, via in enumerate(vias):  # the Via lines together or spread among the others
        lines.insert(min(at + n * (at % 3), len(lines)), via)
    return parse_datagram(("INVITE sip:bob@example.com SIP/2.0\r\n"
                           + "".join(f"{x}\r\n" for x in lines)
                           + "Content-Length: 0\r\n\r\n").encode())


@settings(max_examples=300, deadline=None)
@given(
    st.permutations(OTHER_LINES),
    st.lists(st.sampled_from(VIA_LINES), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(["none", "via", "vias"]),
)
def test_same_message_as_pop_and_prepend(others: list[str], vias: list[str], at: int,
                                         parsed: str) -> None:
    msg = _msg(others, vias, at)
    if parsed == "via":
        msg.via  # noqa: B018 - parsed, as a relay finds it
    elif parsed == "vias":
        msg.vias  # noqa: B018
    fast, long_way = msg.copy(), msg.copy()
    fast.replace_top_via(TOP)
    long_way.pop_via()
    long_way.prepend_via(TOP)
    assert fast.to_bytes() == long_way.to_bytes()
    assert fast.via == long_way.via
    assert fast.vias == long_way.vias
    assert msg.via.branch == parse_datagram(msg.to_bytes()).via.branch  # the source unchanged


def test_cr_refused() -> None:
    msg = _msg(OTHER_LINES, VIA_LINES[:1], 0)
    msg.via  # noqa: B018
    with pytest.raises(ValueError):
        msg.replace_top_via(TOP + "\r\nX: y")
