"""SipMsg.copy() carries the immutable parsed values; each edit forgets exactly what it
changes (on a copy or not), and neither message ever shows the other's edits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kemi_core.sip.message as message_mod
from kemi_core.sip import SipMsg, parse_datagram

RAW = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP b.example;branch=z9hG4bK2\r\n"
    b"v: SIP/2.0/UDP c.example;branch=z9hG4bK3\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: alice <sip:alice@example.com>;tag=f1\r\n"
    b'To: "Bob" <sip:bob@example.com>\r\n'
    b"Call-ID: c1@example.com\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1>\r\n"
    b"Route: <sip:p1.example;lr>\r\n"
    b"Require: timer\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 2\r\n"
    b"\r\nhi"
)


def read_all(m: SipMsg) -> tuple[object, ...]:
    """Every typed value, as comparable plain data (so it can be compared across objects)."""
    return (
        str(m.uri),
        [str(v) for v in m.vias],
        str(m.via),
        str(m.from_),
        str(m.to),
        str(m.cseq),
        m.call_id,
        m.max_forwards,
        m.content_length,
        m.content_type,
        [str(c) for c in m.contacts],
        [str(r) for r in m.routes],
        m.require,
        m.body,
    )


def test_copy_shares_the_parsed_values_and_parses_nothing_again() -> None:
    m = parse_datagram(RAW)
    before = read_all(m)
    # copy() copies the lists it knows of: every list the cache holds must be one of them
    m.record_routes, m.supported, m.proxy_require  # noqa: B018 - read (cached) too
    assert {k for k, v in m._cache.items() if type(v) is list} <= message_mod._LIST_KEYS
    c = m.copy()
    assert c._cache.keys() == m._cache.keys() - {"uri"}  # the R-URI (a mutable SipUri) aside
    for key in ("via", "from", "to", "cseq", "call-id"):
        assert c._cache[key] is m._cache[key]  # immutable: shared, not parsed again
    assert c._cache["vias"] == m._cache["vias"] and c._cache["vias"] is not m._cache["vias"]
    assert read_all(c) == before
    # The shared values cannot be changed in place (their parameters are read-only) ...
    with pytest.raises(TypeError):
        c.via.params["received"] = "192.0.2.9"  # type: ignore[index]
    with pytest.raises(TypeError):
        c.from_.params["x"] = None  # type: ignore[index]
    # ... and the R-URI is the copy's own.
    c.uri.params["lr"] = None
    assert "lr" not in m.uri.params
    assert read_all(m) == before


EDITS: list[tuple[str, Callable[[SipMsg], object]]] = [
    ("prepend_via", lambda m: m.prepend_via("SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKnew")),
    ("pop_via", lambda m: m.pop_via()),
    ("pop_via x2", lambda m: (m.pop_via(), m.pop_via())),
    ("set_ruri", lambda m: m.set_ruri("sip:carol@example.org;transport=tcp")),
    ("set_max_forwards", lambda m: m.set_max_forwards(69)),
    ("remove From", lambda m: m.remove_header("From")),
    ("remove Via", lambda m: m.remove_header("v")),
    ("remove CSeq", lambda m: m.remove_header("CSeq")),
    ("remove Contact", lambda m: m.remove_header("m")),
    ("remove Max-Forwards", lambda m: m.remove_header("Max-Forwards")),
    ("append Route", lambda m: m.append_header("Route", "<sip:p2.example;lr>")),
    ("insert Via", lambda m: m.insert_header("Via", "SIP/2.0/TLS d.example;branch=z9hG4bK4")),
    ("append To", lambda m: m.append_header("To", "<sip:x@example.com>")),
    ("append Call-ID", lambda m: m.append_header("i", "other@example.com")),
    ("after CSeq Require", lambda m: m.add_header_after("CSeq", "Require", "100rel")),
    ("before From Contact", lambda m: m.add_header_before("From", "Contact", "<sip:z@h>")),
    ("set_body", lambda m: m.set_body(b"hello", "application/x-test")),
    ("set_body empty", lambda m: m.set_body(b"")),
]


def safe_read(m: SipMsg) -> object:
    try:
        return read_all(m)
    except Exception as exc:  # an edit may make a header invalid (e.g. two Call-IDs)
        return (type(exc).__name__, getattr(exc, "status", None))


@pytest.mark.parametrize("edit", [e[1] for e in EDITS], ids=[e[0] for e in EDITS])
def test_each_edit_of_a_copy_then_read(edit: Callable[[SipMsg], object]) -> None:
    m = parse_datagram(RAW)
    before = read_all(m)
    c = m.copy()
    edit(c)
    # The copy reads what a fresh parse of its bytes reads: nothing stale survived the edit.
    assert safe_read(c) == safe_read(parse_datagram(c.to_bytes()))
    # The original still reads (and serializes) as before.
    assert read_all(m) == before and m.to_bytes() == RAW


@pytest.mark.parametrize("edit", [e[1] for e in EDITS], ids=[e[0] for e in EDITS])
def test_each_edit_after_reading_then_read(edit: Callable[[SipMsg], object]) -> None:
    m = parse_datagram(RAW)
    read_all(m)
    edit(m)
    assert safe_read(m) == safe_read(parse_datagram(m.to_bytes()))


def test_pop_via_reuses_the_parsed_vias() -> None:
    reply = parse_datagram(
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP us.example;branch=z9hG4bKa, SIP/2.0/UDP next.example:5070;branch=z9hG4bKb\r\n"
        b"Via: SIP/2.0/TCP last.example;branch=z9hG4bKc\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
        b"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    vias = reply.vias
    fwd = reply.copy()
    copied = fwd.vias
    assert copied[0] is vias[0] and copied is not vias  # shared values, the copy's own list
    top = fwd.pop_via()
    assert top is copied[0] and str(top) == str(vias[0])
    assert fwd.vias[0] is copied[1] and fwd.via is copied[1]  # not parsed again
    assert [v.host for v in fwd.vias] == ["next.example", "last.example"]
    assert fwd.pop_via().host == "next.example"  # type: ignore[union-attr]
    assert fwd.via.host == "last.example" and len(fwd.vias) == 1
    assert fwd.pop_via().host == "last.example"  # type: ignore[union-attr]
    assert fwd.pop_via() is None and fwd.vias == []
    assert [v.host for v in reply.vias] == ["us.example", "next.example", "last.example"]
    assert reply.to_bytes() == parse_datagram(reply.to_bytes()).to_bytes()
