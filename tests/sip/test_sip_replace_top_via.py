"""SipMsg.replace_top_via (the ;received/;rport Via put on a request's copy) edits the top Via
in place, as Kamailio does: the line keeps its place, its name as written and its other values;
the compiled form gives the same message as the pure one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.sip.message import methods_py

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
def test_compiled_and_pure_forms_agree(others: list[str], vias: list[str], at: int,
                                       parsed: str) -> None:
    msg = _msg(others, vias, at)
    if parsed == "via":
        msg.via  # noqa: B018 - parsed, as a relay finds it
    elif parsed == "vias":
        msg.vias  # noqa: B018
    fast, pure = msg.copy(), msg.copy()
    fast.replace_top_via(TOP)
    methods_py["replace_top_via"](pure, TOP)
    assert fast.to_bytes() == pure.to_bytes()
    assert fast.header_keys == pure.header_keys
    assert fast.via == pure.via and fast.via.branch == "z9hG4bK1"
    assert fast.vias == pure.vias
    assert len(fast.vias) == len(msg.vias)
    assert msg.via.branch == parse_datagram(msg.to_bytes()).via.branch  # the source unchanged
    # in place: every line but the top Via's is as it was, the top Via's keeps its name
    i = msg.header_keys.index("via")
    before, after = msg.to_bytes().split(b"\r\n"), fast.to_bytes().split(b"\r\n")
    assert [x for k, x in enumerate(before) if k != i] == [x for k, x in enumerate(after) if k != i]
    assert after[i].split(b":")[0] == before[i].split(b":")[0]


def test_odd_spellings_kept() -> None:
    msg = _msg(["CSeq: 1 INVITE"], ['Via:   SIP/2.0/UDP a;x="p,q"  ,SIP/2.0/UDP b  '], 0)
    for m in (msg.copy(), msg.copy()):
        m.replace_top_via(TOP)
        assert m.to_bytes().split(b"\r\n")[1] == f"Via:   {TOP}  ,SIP/2.0/UDP b  ".encode()
    methods_py["replace_top_via"](msg, TOP)
    assert msg.to_bytes().split(b"\r\n")[1] == f"Via:   {TOP}  ,SIP/2.0/UDP b  ".encode()


def test_cr_refused() -> None:
    msg = _msg(OTHER_LINES, VIA_LINES[:1], 0)
    msg.via  # noqa: B018
    with pytest.raises(ValueError):
        msg.replace_top_via(TOP + "\r\nX: y")
