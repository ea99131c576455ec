"""Property tests: whatever the input, only SipParseError escapes (parsing and every typed
property), and what parses round-trips through to_bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipMsg, SipParseError, StreamBuffer, build_reply, parse_datagram

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"  # RFC 4475's 49 messages

BASE = (
    b"INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;received=192.0.2.1, SIP/2.0/UDP h\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'f: "A \\"q\\"" <sips:alice:pw@atlanta.example.com:5061;lr?x=y>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60, tel:+1-201-555-0123\r\n"
    b"Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:rr.example.com;lr>\r\n"
    b"Require: 100rel\r\nSupported: timer, replaces\r\nProxy-Require: foo\r\n"
    b"Expires: 300\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\nv=0\r"
)
SEEDS = [BASE] + [p.read_bytes() for p in sorted(CORPUS.glob("*.dat"))]
assert len(SEEDS) == 50, f"the RFC 4475 seeds are missing from {CORPUS}"

PROPS = (
    "is_request", "method", "ruri", "status", "reason", "version", "uri", "via", "vias",
    "from_", "to", "contacts", "routes", "record_routes", "cseq", "call_id", "max_forwards",
    "content_length", "content_type", "expires", "body", "require", "supported",
    "proxy_require",
)  # fmt: skip


def touch(value: object) -> None:
    """Read every derived field of a typed value (they are lazy too); each read may only
    fail with SipParseError."""
    if isinstance(value, list):
        for v in value:
            touch(v)
        return
    for attr in ("params", "branch", "received", "rport", "tag", "uri", "display", "sent_by"):
        try:
            sub = getattr(value, attr)
        except AttributeError:
            continue  # not a field of this kind of value
        except SipParseError:
            continue
        if attr == "uri" and sub is not None:
            str(sub)
            _ = (sub.transport, sub.params, sub.headers, sub.user, sub.port, sub.hostport)
    try:
        str(value)
    except SipParseError:
        pass


def read_everything(m: SipMsg) -> None:
    """Only SipParseError may come out of any read."""
    for prop in PROPS:
        try:
            touch(getattr(m, prop))
        except SipParseError:
            pass
    for name, _ in m.iter_headers():
        m.header(name)
        m.headers(name)
        m.header_count(name)
    if m.is_request:
        try:
            build_reply(m, 404, "Not Here", to_tag="t1")
        except SipParseError:
            pass


def check(data: bytes) -> None:
    try:
        m = parse_datagram(data)
    except SipParseError as exc:
        assert 400 <= exc.status <= 599 and exc.reason
        return
    read_everything(m)
    out = m.to_bytes()
    again = parse_datagram(out)
    assert again.to_bytes() == out
    assert list(again.iter_headers()) == list(m.iter_headers())
    assert again.body == m.body


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    specials = b' \t\r\n:;,"<>@%=/?[]\\*\x00\xff'
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "insert", "delete", "dup"]))
        if op == "set":
            data[pos] = draw(st.sampled_from(specials))
        elif op == "insert":
            data[pos:pos] = (
                draw(st.binary(min_size=1, max_size=4))
                if draw(st.booleans())
                else bytes([draw(st.sampled_from(specials))])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 12))]
        else:
            end = min(len(data), pos + draw(st.integers(1, 40)))
            data[pos:pos] = data[pos:end]
    return bytes(data)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.binary(max_size=200).map(lambda b: b"INVITE sip:a@b SIP/2.0\r\n" + b))
def test_random_after_request_line(data: bytes) -> None:
    check(data)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check(data)


_VALUE = st.text(
    alphabet=st.sampled_from(list('abcAZ09 \t;,=:<>"@%/?._-+~!*\\[]') + ["\u00e9", "\u4e2d"]),
    max_size=30,
)
_NAME = st.sampled_from(
    [
        "Via",
        "v",
        "From",
        "f",
        "To",
        "t",
        "Contact",
        "m",
        "Route",
        "Record-Route",
        "CSeq",
        "Call-ID",
        "i",
        "Max-Forwards",
        "Expires",
        "Content-Type",
        "c",
        "Require",
        "X-Foo",
        "Supported",
        "k",
    ]  # fmt: skip
)


@FUZZ
@given(st.lists(st.tuples(_NAME, _VALUE), max_size=12), st.binary(max_size=40))
def test_generated_headers(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "OPTIONS sip:x@example.com SIP/2.0\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    check(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "append",
                    "insert",
                    "after",
                    "remove",
                    "prepend_via",
                    "pop_via",
                    "max_forwards",
                    "body",
                    "ruri",
                ]
            ),  # fmt: skip
            _NAME,
            st.text(alphabet="abc123;=.:@ ", min_size=1, max_size=12),
        ),
        max_size=6,
    ),
)
def test_edits_round_trip(seed: bytes, ops: list[tuple[str, str, str]]) -> None:
    try:
        m = parse_datagram(seed)
    except SipParseError:
        return
    for op, name, value in ops:
        try:
            if op == "append":
                m.append_header(name, value)
            elif op == "insert":
                m.insert_header(name, value)
            elif op == "after":
                m.add_header_after("CSeq", name, value)
            elif op == "remove":
                m.remove_header(name)
            elif op == "prepend_via":
                m.prepend_via(f"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{value.strip() or 'x'}")
            elif op == "pop_via":
                m.pop_via()
            elif op == "max_forwards":
                m.set_max_forwards(len(value))
            elif op == "body":
                m.set_body(value.encode(), "text/plain")
            elif op == "ruri" and m.is_request:
                m.set_ruri("sip:" + value.replace(" ", ""))
        except SipParseError:
            pass
        except ValueError:
            pass  # refused edit (bad name or value), the message is unchanged
    out = m.to_bytes()
    again = parse_datagram(out)
    assert list(again.iter_headers()) == list(m.iter_headers())
    assert again.body == m.body
    read_everything(again)


def _framable(data: bytes) -> bool:
    """Seeds a stream can carry: valid, with Content-Length, nothing after the body."""
    try:
        m = parse_datagram(data)
    except SipParseError:
        return False
    try:
        return m.content_length is not None and m.to_bytes() == data
    except SipParseError:
        return False


STREAMABLE = [s for s in SEEDS if _framable(s)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(STREAMABLE), min_size=1, max_size=4),
       st.lists(st.integers(1, 300), max_size=20))  # fmt: skip
def test_stream_chunking_does_not_matter(msgs: list[bytes], cuts: list[int]) -> None:
    stream = b"\r\n".join(msgs)
    whole = StreamBuffer().feed(stream)
    sb = StreamBuffer()
    got: list[SipMsg] = []
    pos = 0
    for n in cuts:
        got += sb.feed(stream[pos : pos + n])
        pos += n
    got += sb.feed(stream[pos:])
    assert [m.to_bytes() for m in got] == [m.to_bytes() for m in whole] == msgs
