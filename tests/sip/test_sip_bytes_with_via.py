"""SipMsg.bytes_with_via (a stateless forward's bytes, made without a copy) gives exactly what a
copy edited the long way gives: replace_top_via(top) when the top Via changes (in place, as
Kamailio edits it), then prepend_via(ours); the message itself stays as it was."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.sip.message import methods_py

OURS = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours"
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
    "CSeq: 1 ACK",
    "Subject: x, y",
]


def long_way(msg: SipMsg, ours: str, top: str | None) -> bytes:
    out = msg.copy()
    if top is not None:
        out.replace_top_via(top)
    out.prepend_via(ours)
    return out.to_bytes()


@settings(max_examples=300, deadline=None)
@given(
    st.permutations(OTHER_LINES),
    st.lists(st.sampled_from(VIA_LINES), max_size=3),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([None, TOP]),
    st.booleans(),
)
def test_same_bytes_as_the_edited_copy(others: list[str], vias: list[str], at: int,
                                       top: str | None, edited: bool) -> None:
    lines = list(others)
    for n, via in enumerate(vias):  # the Via lines together or spread among the others
        lines.insert(min(at + n * (at % 3), len(lines)), via)
    raw = ("ACK sip:bob@example.com SIP/2.0\r\n" + "".join(f"{x}\r\n" for x in lines)
           + "Content-Length: 0\r\n\r\n").encode()
    msg = parse_datagram(raw)
    if edited:
        msg.set_max_forwards(69)
    if vias:
        msg.via  # noqa: B018 - parsed, as a forward finds it
    before = msg.to_bytes()
    assert msg.bytes_with_via(OURS, top) == long_way(msg, OURS, top)
    assert methods_py["bytes_with_via"](msg, OURS, top) == long_way(msg, OURS, top)
    assert msg.to_bytes() == before


def test_only_via_below_a_record_route() -> None:
    """rr's Record-Route above the only Via of a relayed INVITE: the Record-Route stays on top,
    both Vias where the Via was (Kamailio 5.6's layout); compiled and pure alike."""
    msg = parse_datagram(b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1;rport"
                         b"\r\nCSeq: 1 INVITE\r\nContent-Length: 2\r\n\r\nhi")
    msg.insert_header("Record-Route", "<sip:p.example;lr>")
    want = long_way(msg, OURS, TOP)
    assert want.startswith(("INVITE sip:b@example.com SIP/2.0\r\nRecord-Route: <sip:p.example;lr>"
                            f"\r\nVia: {OURS}\r\nVia: {TOP}\r\nCSeq").encode())
    assert msg.bytes_with_via(OURS, TOP) == want
    assert methods_py["bytes_with_via"](msg, OURS, TOP) == want


def test_top_via_edited_in_place() -> None:
    """The top Via keeps its line, its name as written and the line's other values; ours goes
    right above it (Kamailio 5.6, run side by side: tests/e2e/test_front_headers_vs_kamailio.py)."""
    msg = parse_datagram(b"OPTIONS sip:b@example.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n"
                         b"v:  SIP/2.0/UDP a;branch=z9hG4bK1;rport , SIP/2.0/UDP c;branch=z9hG4bK3"
                         b"\r\nX-Mid: 1\r\nVia: SIP/2.0/UDP d;branch=z9hG4bK4\r\n"
                         b"Content-Length: 0\r\n\r\n")
    msg.set_max_forwards(10)  # absent: added above the first header
    want = (f"OPTIONS sip:b@example.com SIP/2.0\r\nMax-Forwards: 10\r\nCSeq: 1 OPTIONS\r\n"
            f"Via: {OURS}\r\nv:  {TOP} , SIP/2.0/UDP c;branch=z9hG4bK3\r\nX-Mid: 1\r\n"
            "Via: SIP/2.0/UDP d;branch=z9hG4bK4\r\nContent-Length: 0\r\n\r\n").encode()
    assert msg.bytes_with_via(OURS, TOP) == want
    assert methods_py["bytes_with_via"](msg, OURS, TOP) == want
    assert long_way(msg, OURS, TOP) == want


def test_body_kept_and_cr_refused() -> None:
    msg = parse_datagram(b"MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1"
                         b"\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi")
    assert msg.bytes_with_via(OURS, TOP).endswith(b"\r\n\r\nhi")
    assert msg.bytes_with_via(OURS, TOP) == long_way(msg, OURS, TOP)
    for bad in (OURS + "\r\nX: y", OURS + "\n"):
        try:
            msg.bytes_with_via(bad)
        except ValueError:
            continue
        raise AssertionError("a CR/LF in our Via must be refused")
