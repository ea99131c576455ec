"""parse_datagram: start line, header boundaries, names, folding, framing, limits."""

from __future__ import annotations

import pytest

from kemi_core.sip import ParseLimits, SipParseError, parse_datagram

REQ = (
    b"OPTIONS sip:b@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n"
    b"From: <sip:a@example.com>;tag=f\r\n"
    b"To: <sip:b@example.com>\r\n"
    b"Call-ID: c1@example.com\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def status_of(data: bytes, limits: ParseLimits | None = None) -> int:
    with pytest.raises(SipParseError) as ei:
        parse_datagram(data) if limits is None else parse_datagram(data, limits)
    return ei.value.status


def test_compact_forms_all_map() -> None:
    pairs = {
        "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
        "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
        "v": "via", "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by",
        "x": "session-expires", "y": "identity",
    }  # fmt: skip
    extra = "".join(f"{c}: value-{c}\r\n" for c in pairs if c not in "ilftv")
    m = parse_datagram(REQ.replace(b"Content-Length: 0\r\n", extra.encode() + b"l: 0\r\n"))
    for short, full in pairs.items():
        if short not in "ilftv":
            assert m.header(full) == f"value-{short}" == m.header(short.upper())
    assert m.header("CONTENT-LENGTH") == "0"


def test_names_are_case_insensitive_and_lws_before_colon() -> None:
    data = REQ.replace(b"Call-ID: c1", b"cALL-iD   : c1").replace(b"CSeq: 1", b"CSEQ\t: 1")
    m = parse_datagram(data)
    assert m.call_id == "c1@example.com" and m.cseq.number == 1
    assert [n for n, _ in m.iter_headers()][3:5] == ["cALL-iD", "CSEQ"]
    assert m.to_bytes() == data


def test_folding_and_lws_around_values() -> None:
    data = REQ.replace(
        b"To: <sip:b@example.com>\r\n",
        b"To:\r\n  <sip:b@example.com>\r\n\t;tag=x\r\nSubject:   hello \r\n  world  \r\n",
    )
    m = parse_datagram(data)
    assert m.to.tag == "x" and m.to.uri_text == "sip:b@example.com"
    assert m.header("subject") == "hello world"
    assert m.header_count("to") == 1
    assert m.to_bytes() == data
    m.append_header("X-A", "1")
    again = parse_datagram(m.to_bytes())
    assert again.to.tag == "x" and again.header("subject") == "hello world"
    assert b"To:\r\n  <sip:b@example.com>\r\n\t;tag=x\r\n" in m.to_bytes()


def test_bare_lf_and_leading_crlf_tolerated() -> None:
    lf = REQ.replace(b"\r\n", b"\n")
    m = parse_datagram(lf)
    assert m.call_id == "c1@example.com" and m.to_bytes() == lf
    m.set_max_forwards(5)
    assert parse_datagram(m.to_bytes()).max_forwards == 5
    m2 = parse_datagram(b"\r\n\r\n" + REQ)
    assert m2.method == "OPTIONS" and m2.to_bytes() == REQ


def test_bare_lf_head_with_crlf_body() -> None:
    data = (REQ.replace(b"Content-Length: 0", b"Content-Length: 6").replace(b"\r\n", b"\n")
            + b"a\r\n\r\nb")  # fmt: skip
    m = parse_datagram(data)
    assert m.body == b"a\r\n\r\nb" and m.content_length == 6


def test_missing_empty_line_is_tolerated() -> None:
    m = parse_datagram(REQ[:-2])
    assert m.body == b"" and m.call_id == "c1@example.com"


def test_status_line() -> None:
    rep = REQ.replace(b"OPTIONS sip:b@example.com SIP/2.0", b"SIP/2.0 486 Busy Here")
    m = parse_datagram(rep)
    assert (m.is_request, m.status, m.reason, m.method) == (False, 486, "Busy Here", "OPTIONS")
    assert parse_datagram(rep.replace(b"486 Busy Here", b"180")).reason == ""
    for bad in (b"SIP/2.0 99 x", b"SIP/2.0 1000 x", b"SIP/2.0 abc x", b"SIP/2.0", b"SIP/2.0 086 x"):
        assert status_of(rep.replace(b"SIP/2.0 486 Busy Here", bad)) == 400


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"OPTIONS sip:b@example.com SIP/3.0", 505),
        (b"OPTIONS sip:b@example.com HTTP/1.1", 400),
        (b"OPTIONS sip:b@example.com", 400),
        (b"OPTIONS  sip:b@example.com extra SIP/2.0", 400),
        (b" OPTIONS sip:b@example.com SIP/2.0", 400),
        (b"OPT<IONS sip:b@example.com SIP/2.0", 400),
        (b"", 400),
    ],
)
def test_bad_request_lines(line: bytes, status: int) -> None:
    assert status_of(REQ.replace(b"OPTIONS sip:b@example.com SIP/2.0", line)) == status


def test_request_line_details() -> None:
    m = parse_datagram(REQ.replace(b"OPTIONS sip:b@example.com SIP/2.0", b"FOO tel:+1 sip/2.0"))
    assert (m.method, m.ruri, m.version) == ("FOO", "tel:+1", "sip/2.0")
    assert m.uri.scheme == "tel"


@pytest.mark.parametrize(
    "bad_line",
    [b"No colon here", b": empty name", b"Bad Name: x", b"X\x00Y: z", b"\xc3\xa9: x"],
)
def test_bad_header_lines(bad_line: bytes) -> None:
    assert (
        status_of(REQ.replace(b"Content-Length: 0\r\n", bad_line + b"\r\nContent-Length: 0\r\n"))
        == 400
    )


def test_continuation_line() -> None:
    # Folded onto the header above (here CSeq, which then no longer parses) ...
    m = parse_datagram(REQ.replace(b"Content-Length: 0\r\n", b" more: x\r\nContent-Length: 0\r\n"))
    assert m.header("cseq") == "1 OPTIONS more: x"
    with pytest.raises(SipParseError):
        _ = m.cseq
    # ... but there is nothing to fold onto right after the start line.
    assert status_of(REQ.replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n x: y\r\nVia")) == 400


def test_content_length_rules() -> None:
    body = b"v=0\r\n"
    ok = REQ.replace(b"Content-Length: 0", b"Content-Length: 5") + body
    assert parse_datagram(ok).body == body
    # Extra octets after Content-Length are dropped (RFC 3261 18.3).
    m = parse_datagram(ok + b"garbage")
    assert m.body == body and m.to_bytes() == ok
    assert status_of(REQ.replace(b"Content-Length: 0", b"Content-Length: 9") + body) == 400
    assert status_of(REQ.replace(b"Content-Length: 0", b"Content-Length: x")) == 400
    assert status_of(REQ.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0")) == 400
    # Without Content-Length, a datagram's body is the rest.
    assert parse_datagram(REQ.replace(b"Content-Length: 0\r\n", b"") + body).body == body
    folded = REQ.replace(b"Content-Length: 0", b"Content-Length:\r\n 5") + body
    assert parse_datagram(folded).body == body


def test_limits() -> None:
    assert status_of(REQ + b"x" * 70000) == 413
    small = ParseLimits(max_message_size=100)
    assert status_of(REQ, small) == 413
    many = REQ.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 10 + b"\r\n")
    assert status_of(many, ParseLimits(max_headers=10)) == 400
    assert parse_datagram(many, ParseLimits(max_headers=20)).header_count("x-a") == 10
    long = REQ.replace(b"\r\n\r\n", b"\r\nX-Long: " + b"a" * 300 + b"\r\n\r\n")
    assert status_of(long, ParseLimits(max_header_line=200)) == 400
    assert parse_datagram(long).header("x-long") == "a" * 300


def test_mandatory_headers_optional_check() -> None:
    partial = REQ.replace(b"From: <sip:a@example.com>;tag=f\r\n", b"")
    m = parse_datagram(partial)  # RFC 4475 3.3.1: parsing must not break
    with pytest.raises(SipParseError):
        _ = m.from_
    assert status_of(partial, ParseLimits(require_mandatory=True)) == 400


def test_non_utf8_bytes_survive() -> None:
    data = REQ.replace(b"Content-Length: 0", b"X-Bin: \xff\xfe\x80\r\nContent-Length: 0")
    m = parse_datagram(data)
    assert m.to_bytes() == data
    m.append_header("X-B", "1")
    assert b"X-Bin: \xff\xfe\x80\r\n" in m.to_bytes()
    assert m.header("x-bin") is not None


def test_accepts_bytearray_and_memoryview() -> None:
    assert parse_datagram(bytearray(REQ)).to_bytes() == REQ
    assert parse_datagram(memoryview(REQ)).to_bytes() == REQ


def test_errors_carry_status_and_reason() -> None:
    with pytest.raises(SipParseError) as ei:
        parse_datagram(b"garbage")
    e = ei.value
    assert e.status == e.status_hint == 400 and e.reason and str(e).startswith("400 ")
