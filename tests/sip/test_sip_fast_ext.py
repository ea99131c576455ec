"""The compiled helpers (kemi_core/sip/_fast.c) give exactly what their pure-Python forms give.

Three levels: each helper against its reference on generated input (folding, odd whitespace,
non-ASCII and surrogate-escaped bytes, junk), then every RFC 4475 message and every sample
parsed and read in full with the compiled helpers and with the pure-Python ones.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_core.sip.edits as edits_mod
import kemi_core.sip.headers as headers_mod
import kemi_core.sip.message as message_mod
import kemi_core.sip.parser as parser_mod
import kemi_core.sip.reply as reply_mod
import kemi_core.sip.syntax as syntax_mod
import kemi_core.sip.values as values_mod
from kemi_core.sip import DEFAULT_LIMITS, ParseLimits, SipMsg, SipParseError
from kemi_core.sip.parser import _NAME_CACHE
from kemi_core.sip.syntax import (
    PURE_PYTHON,
    index_head_py,
    line_value_py,
    single_index_py,
    single_value_py,
)
from kemi_core.sip.values import CSeq, NameAddr, Via


def parse_datagram(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMsg:
    """The parser's entry as pure_python() leaves it (compiled, or parse_datagram_py)."""
    return parser_mod.parse_datagram(data, limits)


fast = pytest.importorskip(
    "kemi_core.sip._fast", reason="the C helpers were not built (no compiler at install time)"
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"  # RFC 4475's 49 messages
EXAMPLES = sorted(CORPUS.glob("*.dat"))
assert len(EXAMPLES) == 49, f"the RFC 4475 examples are missing from {CORPUS}"

# Characters that matter to the helpers: separators, every kind of whitespace str.strip()
# knows (ASCII and not), CR/LF for folding, non-ASCII and lone surrogates (what
# surrogateescape makes of bytes that are not UTF-8).
SPECIAL = " \t\r\n:\x0b\x0c\x1c\x1f\x85\xa0\u2000\u3000\udc80\udcff\u00e9\u4e2d\U0001f600"
chars = st.sampled_from(string.ascii_letters + string.digits + "-.;=<>\"'" + SPECIAL)
text = st.text(chars, max_size=60)
FOLDS = ["\r\n ", "\r\n\t", "\n ", " \r\n  ", "\t\n\t", "\r", "\n", "\r\n"]


@st.composite
def header_line(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["Via", "v", "From", "t", "Call-ID", "X-Odd ", "", "cseq"]))
    pieces = draw(st.lists(st.one_of(text, st.sampled_from(FOLDS)), max_size=5))
    return name + draw(st.sampled_from([":", " : ", "", ":  "])) + "".join(pieces)


@settings(max_examples=400, deadline=None)
@given(st.one_of(header_line(), text))
def test_line_value_matches_python(line: str) -> None:
    assert fast.line_value(line) == line_value_py(line)
    # Same kind of string too: a non-canonical str would compare unequal to equal text.
    assert fast.line_value(line).isascii() == line_value_py(line).isascii()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(header_line(), st.sampled_from(["", "\r", "INVITE sip:a@b SIP/2.0\r"]))),
    st.sampled_from(["", "\n", "\r\n", "\n\n"]),
    st.sampled_from(["\r\n", "\r\n", "\n"]),
)
def test_index_head_matches_python(lines: list[str], tail: str, sep: str) -> None:
    # Warm the name cache the way parsing does, then compare on the same cache.
    for line in lines:
        try:
            parse_datagram(
                f"OPTIONS sip:a@b SIP/2.0\r\n{line}\r\n\r\n".encode("utf-8", "surrogatepass")
            )
        except (SipParseError, UnicodeEncodeError):
            pass
    head = sep.join(lines) + tail
    cache = dict(_NAME_CACHE)
    got, want = fast.index_head(head, cache), index_head_py(head, cache)
    assert got == want
    if got is not None:
        # The keys are the cache's own (interned) objects, as in the Python form.
        assert all(a is b for a, b in zip(got[1], want[1], strict=True))


good_line = st.tuples(
    st.sampled_from(["Via", "v", "From", "To", "Call-ID", "CSeq", "X-Odd "]),
    st.text(string.ascii_letters + " ;=:<>@\udc80\u00e9", max_size=30),
).map(lambda t: f"{t[0]}: {t[1]}\r")


@settings(max_examples=200, deadline=None)
@given(st.lists(good_line, max_size=10), st.sampled_from(["", "\n"]))
def test_index_head_matches_python_on_good_heads(lines: list[str], tail: str) -> None:
    parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nv: x\r\nFrom: x\r\nTo: x\r\n"
                   b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nX-Odd : x\r\n\r\n")  # fmt: skip
    head = "\n".join(["OPTIONS sip:a@b SIP/2.0\r", *lines]) + tail
    got = fast.index_head(head, _NAME_CACHE)
    assert got is not None and got == index_head_py(head, _NAME_CACHE)
    assert got[0] == head.split("\n")[: len(lines) + 1]


keys = st.lists(st.sampled_from(["", "via", "from", "to", "cseq", "x"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(keys, st.sampled_from(["via", "from", "to", "x", "y", ""]))
def test_single_index_matches_python(names: list[str], key: str) -> None:
    # Equal but not identical strings must be found too (edits add keys built at run time).
    copies = ["".join(list(n)) for n in names]
    assert fast.single_index(copies, key) == single_index_py(copies, key)
    assert fast.single_index(names, key) == single_index_py(names, key)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["via", "from", "x"]), header_line()), max_size=8),
       st.sampled_from(["via", "from", "x", "y"]))  # fmt: skip
def test_single_value_matches_python(pairs: list[tuple[str, str]], key: str) -> None:
    names, lines = [k for k, _ in pairs], [line for _, line in pairs]
    assert fast.single_value(names, lines, key) == single_value_py(names, lines, key)


def test_helpers_refuse_wrong_types() -> None:
    with pytest.raises(TypeError):
        fast.scan_message(b"x", [], frozenset(), 1, 1, 1)  # type: ignore[arg-type]
    # Not bytes: None (the Python path converts it), never an error.
    assert fast.scan_message(bytearray(b"x"), {}, frozenset(), 9, 9, 9) is None
    with pytest.raises(TypeError):
        fast.message_type(dict, frozenset())  # a class whose state is in object slots only
    with pytest.raises(TypeError):
        fast.message_type(type("M", (), dict.fromkeys(message_mod.SipMsg.__slots__ + (
            "_lines",), 1)), frozenset())
    with pytest.raises(TypeError):
        fast.value_types(Via, dict)  # tuple subclasses only
    with pytest.raises(TypeError):
        fast.line_value(b"Via: x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.index_head("x", [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.single_index(("via",), "via")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.single_value(["via"], ("Via: x",), "via")  # type: ignore[arg-type]
    # A lines list shorter than the keys: None, never a read past its end.
    assert fast.single_value(["", "via"], ["INVITE sip:a@b SIP/2.0\r"], "via") is None


@contextmanager
def pure_python() -> Iterator[None]:
    """Swap the compiled helpers for their Python forms in every module that bound them."""
    swaps = [
        (parser_mod, "index_head", index_head_py),
        (parser_mod, "line_value", line_value_py),
        (parser_mod, "single_index", single_index_py),
        (message_mod, "line_value", line_value_py),
        (message_mod, "single_index", single_index_py),
        (message_mod, "single_value", single_value_py),
        (edits_mod, "line_value", line_value_py),
        (reply_mod, "line_value", line_value_py),
        (headers_mod, "via_fields", None),
        (headers_mod, "name_addr_fields", None),
        (parser_mod, "scan_message", None),
        (parser_mod, "parse_datagram", parser_mod.parse_datagram_py),
        *((SipMsg, name, method) for name, method in message_mod.methods_py.items()),
        *((SipMsg, name, prop) for name, prop in message_mod.properties_py.items()),
        (values_mod._HeaderValue, "params", values_mod._HeaderValue.params_py),
        (values_mod.NameAddr, "uri", values_mod.NameAddr.uri_py),
        (edits_mod, "message_bytes", edits_mod.message_bytes_py),
        (message_mod, "message_bytes", edits_mod.message_bytes_py),
        (reply_mod, "reply_lines", reply_mod.reply_lines_py),
        (reply_mod, "lines_crc32", reply_mod.lines_crc32_py),
        (values_mod, "params_trusted", syntax_mod.params_trusted_py),
        (headers_mod, "params_trusted", syntax_mod.params_trusted_py),
    ]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in swaps]
    try:
        for mod, name, value in swaps:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def read_all(data: bytes) -> object:
    """Everything a script could read of a message, or the status its parse fails with."""

    def attempt(fn: Callable[[], object]) -> object:
        try:
            return fn()
        except SipParseError as exc:
            return ("raised", exc.status)

    try:
        m = parse_datagram(data)
    except SipParseError as exc:
        return ("raised", exc.status)
    return (
        m.first_line, m.ruri, m.header_keys, m.to_bytes(), list(m.iter_headers()),
        attempt(lambda: [repr(v) for v in m.vias]), attempt(lambda: str(m.from_)),
        attempt(lambda: str(m.to)), attempt(lambda: str(m.cseq)), attempt(lambda: m.call_id),
        attempt(lambda: m.max_forwards), attempt(lambda: m.content_length),
        attempt(lambda: m.expires), attempt(lambda: [str(c) for c in m.contacts]),
        attempt(lambda: m.require), attempt(lambda: m.header("Subject")),
    )  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_rfc4475_reads_the_same_compiled_or_not(path: Path) -> None:
    data = path.read_bytes()
    compiled = read_all(data)
    with pure_python():
        assert parser_mod.index_head is index_head_py
        assert read_all(data) == compiled


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_compiled_helpers_are_in_use() -> None:
    # Built means used: the parser and the message read through the compiled forms.
    assert parser_mod.index_head is fast.index_head
    assert message_mod.line_value is fast.line_value
    assert message_mod.single_index is fast.single_index
    assert message_mod.single_value is fast.single_value
    assert headers_mod.via_fields is fast.via_fields
    assert headers_mod.name_addr_fields is fast.name_addr_fields
    assert parser_mod.scan_message is fast.scan_message
    for name, method in message_mod.methods_py.items():
        assert getattr(SipMsg, name) is not method
    assert type(SipMsg.__dict__["via"]) is not property
    for name in message_mod.FIELD_PROPERTIES:
        assert type(SipMsg.__dict__[name]) is not property
    assert parser_mod.parse_datagram is not parser_mod.parse_datagram_py
    assert type(values_mod._HeaderValue.__dict__["params"]) is not property
    assert type(values_mod.NameAddr.__dict__["uri"]) is not property
    assert edits_mod.message_bytes is fast.message_bytes
    assert message_mod.message_bytes is fast.message_bytes
    assert reply_mod.reply_lines is fast.reply_lines
    assert reply_mod.lines_crc32 is fast.lines_crc32
    assert values_mod.params_trusted is fast.params_trusted
    assert headers_mod.params_trusted is fast.params_trusted


# ---- the value parsers against headers.py's regex paths -------------------------------------
def value_outcome(fn: Callable[[str], object], value: str) -> object:
    try:
        v = fn(value)
    except SipParseError as exc:
        return ("raised", exc.status)
    fields = tuple(v)  # type: ignore[call-overload]
    return fields, type(v).__name__, v.params  # type: ignore[attr-defined]


TOKENISH = string.ascii_letters + string.digits + "-.!%*_+`'~"
odd = st.sampled_from([" ", "  ", "\t", ";", "=", ":", ",", "?", "<", ">", '"', "\\", "[", "]",
                       "\u00e9", "\u3000", "\udc80", "/", "@", ""])  # fmt: skip
word = st.text(TOKENISH, min_size=1, max_size=6)
param_name = st.one_of(word, st.sampled_from(["branch", "BRANCH", "Branch", "tag", "TAG", "rport"]))
param_value = st.one_of(st.none(), word, st.text(TOKENISH + ":[]", min_size=0, max_size=6))
params = st.lists(st.tuples(param_name, param_value), max_size=4).map(
    lambda ps: "".join(f";{n}" if v is None else f";{n}={v}" for n, v in ps)
)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """A value with a few odd characters put in at random places (or none)."""
    for _ in range(draw(st.integers(0, 2))):
        pos = draw(st.integers(0, len(base)))
        base = base[:pos] + draw(odd) + base[pos:]
    return base


@st.composite
def via_value(draw: st.DrawFn) -> str:
    transport = draw(
        st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "udp", "UDPX", "W"])
    )
    host = draw(st.one_of(
        st.lists(word, min_size=1, max_size=3).map(".".join),
        st.text("0123456789abcdefABCDEF:.", min_size=0, max_size=8).map(lambda h: f"[{h}]"),
    ))  # fmt: skip
    port = draw(
        st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=7).map(":".__add__))
    )
    proto = draw(st.sampled_from(["SIP/2.0/", "SIP/2.0/", "sip/2.0/", "SIP/2.1/"]))
    return draw(mutated(f"{proto}{transport} {host}{port}{draw(params)}"))


@st.composite
def name_addr_value(draw: st.DrawFn) -> str:
    display = draw(st.sampled_from(["", '"Alice" ', '"Al ice"', '"" ', "Bob ", "Bob Smith ",
                                    "Bob  Smith ", "Bob"]))  # fmt: skip
    scheme = draw(st.sampled_from(["sip", "sips", "tel", "x-y+z.1", "1sip", ""]))
    rest = draw(st.text(TOKENISH + "@:;=?&", min_size=0, max_size=12))
    uri = f"{scheme}:{rest}"
    inner = f"<{uri}>" if draw(st.booleans()) or display else uri
    return draw(mutated(f"{display}{inner}{draw(params)}"))


@settings(max_examples=500, deadline=None)
@given(via_value())
def test_via_fields_match_the_regex_path(value: str) -> None:
    compiled = value_outcome(headers_mod.parse_via, value)
    with pure_python():
        assert value_outcome(headers_mod.parse_via, value) == compiled


@settings(max_examples=500, deadline=None)
@given(name_addr_value())
def test_name_addr_fields_match_the_regex_path(value: str) -> None:
    compiled = value_outcome(headers_mod.parse_name_addr, value)
    with pure_python():
        assert value_outcome(headers_mod.parse_name_addr, value) == compiled


# ---- the whole-datagram pass against the Python path ----------------------------------------
START_LINES = ["INVITE sip:b@h SIP/2.0", "OPTIONS sip:b@h SIP/2.0", "FOO sip:b@h SIP/2.0",
               "SIP/2.0 200 OK", "SIP/2.0 180 Ringing now", "SIP/2.0 099 Low", "SIP/2.0 200",
               "SIP/2.0 200 SIP/2.0", "INVITE  sip:b@h SIP/2.0", "INVITE sip:b@h SIP/2.1",
               "INVITE sip:b@h sip/2.0", " INVITE sip:b@h SIP/2.0", "INVITE sip:\xe9@h SIP/2.0",
               "SIP/2.0 2x0 OK", "INVITE sip:b@h SIP/2.0 x", "ACK  SIP/2.0"]  # fmt: skip
HEADERS = ["Via: SIP/2.0/UDP h;branch=z9hG4bK1", "v: SIP/2.0/UDP h", "From: <sip:a@h>;tag=1",
           "To: <sip:b@h>", "t: B <sip:b@h>;tag=9", "To: sip:b@h;x", "Call-ID: c1", "CSeq: 1 INVITE", "CSeq: 2 OPTIONS", "CSeq: 0012  ACK",
           "CSeq: 1234567890 INVITE", "CSeq: 7 FOO", "CSeq: \t3 INVITE ",
           "Via: SIP/2.0/TCP x, SIP/2.0/UDP y;branch=z9hG4bK2", "Max-Forwards: 70",
           "Max-Forwards: 0", "Max-Forwards: 256", "Max-Forwards:  007 ",
           "X-Odd : 1", "Content-Length: 0", "Content-Length: 4", "Content-Length:  2 ",
           "l: 3", "Content-Length: 99", "Content-Length: x", "Content-Length: 00000000001",
           "Content-Length: \x0c1", "Content-Length:", "Subject: caf\xc3\xa9", "junk line",
           "Bad Name: x", " folded", "\tfolded", "Content-Length: 1\r"]  # fmt: skip
SEPS = ["\r\n", "\r\n", "\r\n", "\n", "\r"]


@st.composite
def datagram(draw: st.DrawFn) -> bytes:
    # Half are clean (what the compiled pass takes, but for its own refusals), half anything.
    clean = draw(st.booleans())
    lines = [draw(st.sampled_from(START_LINES[:8] if clean else START_LINES))]
    lines += draw(st.lists(st.sampled_from(HEADERS[:26] if clean else HEADERS), max_size=8))
    sep = "\r\n" if clean else draw(st.sampled_from(SEPS))
    text = "".join(line + (sep if draw(st.booleans()) else "\r\n") for line in lines)
    head = (("" if clean else draw(st.sampled_from(["", "\r\n"]))) + text).encode("latin-1")
    head = head.decode("unicode_escape").encode("latin-1")
    end = b"\r\n" if clean else draw(st.sampled_from([b"\r\n", b"\n", b""]))
    body = draw(st.sampled_from([b"", b"abcd", b"ab", b"abcdefgh", b"\xff\x00"]))
    return head + end + body


def datagram_outcome(data: bytes, limits: parser_mod.ParseLimits) -> object:
    try:
        m = parse_datagram(data, limits)
    except SipParseError as exc:
        return ("raised", exc.status, str(exc))
    # the compiled pass parses the top Via and the CSeq as reading them does: read them too
    read = []
    for name in ("via", "cseq", "max_forwards", "to"):
        try:
            value = getattr(m, name)
            read.append(value if value is None or type(value) is int else tuple(value))
        except SipParseError as exc:
            read.append(("raised", exc.status, str(exc)))
    return (m._lines, m._names, m.is_request, m._method, m._ruri, m.status, m.reason,
            m.version, m._body, m._buf, read, m._cache)


LIMITS = [parser_mod.DEFAULT_LIMITS, parser_mod.ParseLimits(max_headers=3),
          parser_mod.ParseLimits(max_header_line=20), parser_mod.ParseLimits(max_message_size=60),
          parser_mod.ParseLimits(require_mandatory=True)]  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(datagram(), st.sampled_from(LIMITS))
def test_scan_datagram_parses_as_the_python_path(data: bytes,
                                                 limits: parser_mod.ParseLimits) -> None:
    # Warm the name cache with every header name, as earlier messages would.
    for h in HEADERS:
        try:
            parse_datagram(f"OPTIONS sip:a@b SIP/2.0\r\n{h}\r\n\r\n".encode())
        except SipParseError:
            pass
    with pure_python():
        want = datagram_outcome(data, limits)
    got = datagram_outcome(data, limits)
    assert got == want
    if want[0] != "raised":
        # identical keys (the cache's interned objects), and str of the same kind
        m = parse_datagram(data, limits)
        assert [a.isascii() for a in m._lines] == [a.isascii() for a in want[0]]  # type: ignore[index]


USUAL_VIAS = ["SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx.0",
              "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1;rport=5061;received=127.0.0.1",
              "SIP/2.0/TCP [::1]:5062;rport", "SIP/2.0/UDP h"]  # fmt: skip
VIA_SEPS = [",", ", ", " ,", " , ", ",\t", "\t,  ", ",,", ", ,", ",\x0b", ",\xa0", ",\u3000",
            ",\x0c ", "\x1f,"]  # fmt: skip


@st.composite
def joined_via_line(draw: st.DrawFn) -> str:
    """A Via line of several values (as SIPp's [last_Via:] joins them): usual ones, odd ones,
    every kind of separator and whitespace, a leading or trailing comma."""
    values = draw(st.lists(st.one_of(st.sampled_from(USUAL_VIAS), via_value()),
                           min_size=1, max_size=4))
    line = values[0]
    for v in values[1:]:
        line += draw(st.sampled_from(VIA_SEPS)) + v
    edge = draw(st.sampled_from(["", "", "", ",", " ,", "\t"]))
    return (edge + line) if draw(st.booleans()) else (line + edge)


@settings(max_examples=600, deadline=None)
@given(joined_via_line(), st.sampled_from(["SIP/2.0 200 OK", "INVITE sip:b@h SIP/2.0"]),
       st.sampled_from(["Via", "v"]), st.booleans())
def test_joined_top_via_line_parses_as_the_python_path(line: str, start: str, name: str,
                                                       second_line: bool) -> None:
    """A top Via line of several values: the compiled pass fills msg.via ahead only when
    every value has the usual shape; msg.via, msg.vias, their errors and the cache are the
    Python path's in every case."""
    for h in HEADERS:  # warm the name cache as earlier messages would
        try:
            parse_datagram(f"OPTIONS sip:a@b SIP/2.0\r\n{h}\r\n\r\n".encode())
        except SipParseError:
            pass
    more = "Via: SIP/2.0/UDP next;branch=z9hG4bK9\r\n" if second_line else ""
    data = (f"{start}\r\n{name}: {line}\r\n{more}CSeq: 1 INVITE\r\n\r\n"
            .encode("utf-8", "surrogateescape"))

    def outcome() -> object:
        got = datagram_outcome(data, parser_mod.DEFAULT_LIMITS)
        if got[0] == "raised":  # type: ignore[index]
            return got
        m = parse_datagram(data)
        try:
            vias = [tuple(v) for v in m.vias]
            params = [dict(v.params) for v in m.vias]
        except SipParseError as exc:
            vias, params = [("raised", exc.status, str(exc))], []
        return got, vias, params

    with pure_python():
        want = outcome()
    assert outcome() == want
    if all(v.strip(" \t") in USUAL_VIAS for v in line.split(",")) and ",," not in line:
        m = scan(data)  # the usual joined line: parsed ahead, not left to msg.via
        assert m is not None and tuple(m._cache["via"]) == tuple(m.via)


def scan(data: bytes) -> SipMsg | None:
    return fast.scan_message(data, _NAME_CACHE, parser_mod.METHODS, 65535, 256, 8192)  # type: ignore[no-any-return]


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set (SipMsg is not registered)")
def test_scan_message_takes_the_usual_messages() -> None:
    """The usual request and reply are taken by the compiled pass (not left to Python)."""
    fast.value_types(Via, CSeq, NameAddr)  # (as the parser does when it uses the compiled pass)
    parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\nContent-Length: 2\r\n\r\nab")
    parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 1\r\n\r\n")
    for data in (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nContent-Length: 2\r\n\r\nabcd",
                 b"SIP/2.0 180 Ringing\r\nVia: x\r\n\r\n"):
        found = scan(data)
        assert type(found) is SipMsg
    assert found is not None
    assert (found._lines, found._names, found.is_request, found._method, found._ruri,
            found.status, found.reason, found.version) == (
        ["SIP/2.0 180 Ringing\r", "Via: x\r"], ["", "via"], False, "", "", 180, "Ringing",
        "SIP/2.0")  # fmt: skip
    assert found._cache == {}  # a Via of another shape: parsed (or refused) when read
    found = scan(b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h:5;branch=z9hG4bK1;rport\r\n"
                 b"Via: SIP/2.0/TCP x\r\n\r\n")
    assert found is not None
    via = found._cache["via"]
    assert type(via) is Via and found._cache.keys() == {"via"}  # no CSeq
    assert tuple(via) == ("SIP/2.0", "UDP", "h", 5, "SIP/2.0/UDP h:5;branch=z9hG4bK1;rport",
                          "z9hG4bK1", ";branch=z9hG4bK1;rport")
    for cseq, fields in (("1 INVITE", (1, "INVITE")), ("007  BYE", None), ("1 FOO", None)):
        found = scan(f"SIP/2.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode())
        assert found is not None
        assert found._cache.get("cseq") == fields
        assert fields is None or type(found._cache["cseq"]) is CSeq
    found = scan(b"BYE sip:a@b SIP/2.0\r\nCSeq: 2 INVITE\r\n\r\n")
    assert found is not None and found._cache == {}  # a request's: parsed (or refused) when read
    # a request's usual To is parsed ahead (the gate reads it), a reply's when read
    found = scan(b"BYE sip:a@b SIP/2.0\r\nTo: B <sip:b@h>;tag=1\r\n\r\n")
    assert found is not None and type(found._cache["to"]) is NameAddr
    assert tuple(found._cache["to"]) == ("B", "sip:b@h", False, "B <sip:b@h>;tag=1", "1", ";tag=1")
    found = scan(b"SIP/2.0 200 OK\r\nTo: B <sip:b@h>;tag=1\r\n\r\n")
    assert found is not None and "to" not in found._cache
    # a request's usual Max-Forwards is parsed ahead; the other shapes when read
    for value, parsed in (("70", 70), ("0", 0), ("255", 255), ("256", None), ("0070", None),
                          ("7 0", None), ("", None), ("\u0661", None)):
        data = f"BYE sip:a@b SIP/2.0\r\nMax-Forwards: {value}\r\n\r\n".encode()
        found = scan(data)
        if found is not None:
            assert found._cache.get("max-forwards") == parsed
    found = scan(b"BYE sip:a@b SIP/2.0\r\nMax-Forwards: 7\r\nMax-Forwards: 7\r\n\r\n")
    assert found is not None and "max-forwards" not in found._cache  # (reading it: a 400)


# ---- the message's copy against its Python form -----------------------------------------------
EDITS: list[Callable[[SipMsg], object]] = [
    lambda m: m.via, lambda m: m.vias, lambda m: m.uri, lambda m: m.max_forwards,
    lambda m: m.contacts, lambda m: m.append_header("Contact", "<sip:a@b>, <sip:c@d>"),
    lambda m: m.prepend_via("SIP/2.0/UDP p;branch=z9hG4bKp"), lambda m: m.pop_via(),
    lambda m: m.set_max_forwards(3), lambda m: m.remove_header("Via"), lambda m: m.cseq,
    lambda m: m.set_ruri("sip:x@y"), lambda m: m.set_body(b"xy"),
]  # fmt: skip


def message_state(m: SipMsg) -> tuple[object, ...]:
    return (m._lines, m._names, m.is_request, m._method, m._ruri, m.status, m.reason, m._body,
            m._buf, m._cache, m.version)


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_compiled_copy_refuses_other_objects() -> None:
    with pytest.raises(TypeError):
        SipMsg.copy(object())  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(datagram(), st.lists(st.integers(0, len(EDITS) - 1), max_size=6))
def test_copy_matches_python(data: bytes, edits: list[int]) -> None:
    try:
        m = parse_datagram(data)
    except SipParseError:
        return
    for e in edits:
        try:
            EDITS[e](m)
        except (SipParseError, ValueError):
            pass
    got, want = m.copy(), message_mod.copy_py(m)
    assert type(got) is SipMsg and message_state(got) == message_state(want)
    # independent of the original: its own lists, its own list values in the cache
    assert got._lines is not m._lines and got._names is not m._names
    assert got._cache is not m._cache or not m._cache
    for key in message_mod._LIST_KEYS & got._cache.keys():
        assert got._cache[key] is not m._cache[key]
    got.append_header("X-Copy", "1")
    assert m._names.count("x-copy") == 0 and message_state(want) != message_state(got)


# ---- the compiled edits against their pure forms ------------------------------------------------
EDIT_ARGS: dict[str, list[tuple[object, ...]]] = {
    "set_max_forwards": [(0,), (69,), (255,), (256,), (-1,), (3.0,), (True,), (2**70,), ("7",)],
    "prepend_via": [("SIP/2.0/UDP a:5;branch=z9hG4bKx",), ("",), ("x\r",), ("y\n",),
                    ("\u00e9\udc80",), (b"v",)],
    "bytes_without_top_via": [()],
    "value_at": [(0,), (1,), (2,), (5,), (-1,), (99,), (2**70,), ("1",)],
    "bytes_with_via": [("SIP/2.0/UDP o;branch=z9hG4bKo",),
                       ("SIP/2.0/UDP o;branch=z9hG4bKo", "SIP/2.0/UDP t;received=1.2.3.4"),
                       ("SIP/2.0/UDP o", None), ("o\r",), ("o", "t\n"), ("o", b"t"), (b"o",),
                       ("\u00e9", "\udc80"), ("o", "t", "x")],
    "replace_top_via": [("SIP/2.0/UDP t;received=1.2.3.4;rport=5",), ("",), ("t\r",), ("t\n",),
                        ("\u00e9\udc80",), (b"t",)],
}  # fmt: skip
LAYOUTS: list[Callable[[SipMsg], object]] = [
    lambda m: m.append_header("max-forwards", "9"), lambda m: m.insert_header("v", "SIP/2.0/UDP q"),
    lambda m: m.append_header("Via", "SIP/2.0/UDP r, SIP/2.0/UDP s"),
    lambda m: m.remove_header("Max-Forwards"), lambda m: m.insert_header("Via", "SIP/2.0/TCP t"),
    lambda m: m.insert_header("Record-Route", "<sip:p;lr>"),  # above the Via, as rr puts it
    # top Via lines the compiled forms leave to the pure ones (blanks, a quote, two values)
    lambda m: m.insert_header("Via", "SIP/2.0/UDP q ;x=1 "),
    lambda m: m.insert_header("Via", ' SIP/2.0/UDP q;x="a,b"'),
    lambda m: m.insert_header("Via", "SIP/2.0/UDP q;x=\"a\\\"b\" , SIP/2.0/UDP z"),
    lambda m: m.insert_header("VIA", "SIP/2.0/UDP q"),
]  # fmt: skip
edit_call = st.sampled_from([(name, args) for name, many in EDIT_ARGS.items() for args in many])


@settings(max_examples=500, deadline=None)
@given(datagram(), st.lists(st.one_of(st.integers(0, len(EDITS) + len(LAYOUTS) - 1), edit_call),
                            max_size=10))
def test_compiled_edits_match_python(data: bytes, steps: list[object]) -> None:
    """set_max_forwards, prepend_via and bytes_without_top_via give the same results, errors
    and message state compiled or pure, on any layout the edits make."""
    try:
        compiled, pure = parse_datagram(data), parse_datagram(data)
    except SipParseError:
        return
    ops = EDITS + LAYOUTS

    def run(m: SipMsg, call: Callable[[SipMsg, str, tuple[object, ...]], object]) -> list[object]:
        seen: list[object] = []
        for step in steps:
            try:
                if isinstance(step, int):
                    ops[step](m)
                    seen.append(message_state(m))
                else:
                    name, args = step  # type: ignore[misc]
                    seen.append((call(m, name, args), message_state(m)))
            except (SipParseError, ValueError, TypeError, IndexError) as exc:
                seen.append(("raised", type(exc).__name__, str(exc)))
        return seen

    def call_pure(m: SipMsg, name: str, args: tuple[object, ...]) -> object:
        return message_mod.methods_py[name](m, *args)

    got = run(compiled, lambda m, name, args: getattr(m, name)(*args))
    assert repr(got) == repr(run(pure, call_pure))


# ---- the cached values read through the compiled descriptor ------------------------------------
def _read_pure(m: SipMsg, name: str) -> object:
    """The property ``name`` read through its pure getter (the descriptor's reference)."""
    return message_mod.properties_py[name].__get__(m, SipMsg)


@settings(max_examples=400, deadline=None)
@given(datagram(), st.lists(st.one_of(st.integers(0, len(EDITS) - 1),
                                      st.sampled_from(list(message_mod.CACHED_PROPERTIES))),
                            max_size=12))
def test_cached_values_read_as_the_properties(data: bytes, steps: list[int | str]) -> None:
    """Reads (any order, between edits) give the same through cached_value as through the
    Python properties, errors included, and leave the same cache."""
    try:
        # parsed once first: the parser learns a compact header name (`v`) on its first sight
        # of it, which changes what the parse itself caches; both compared messages are then
        # parsed alike, whatever ran before (alone under -k, or after the file's other tests)
        parse_datagram(data)
        compiled, pure = parse_datagram(data), parse_datagram(data)
    except SipParseError:
        return

    def run(m: SipMsg, read: Callable[[SipMsg, str], object]) -> list[object]:
        seen: list[object] = []
        for step in [*steps, *message_mod.CACHED_PROPERTIES]:
            try:
                seen.append(repr(read(m, step)) if isinstance(step, str) else EDITS[step](m))
            except (SipParseError, ValueError) as exc:
                seen.append(("raised", type(exc).__name__, str(exc)))
        return [*seen, repr(m._cache)]

    assert [repr(x) for x in run(compiled, getattr)] == [repr(x) for x in run(pure, _read_pure)]


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_cached_value_descriptor() -> None:
    via = SipMsg.__dict__["via"]
    assert SipMsg.via is via and via.__doc__ == message_mod.properties_py["via"].__doc__
    m = parse_datagram(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n")
    with pytest.raises(AttributeError):
        m.via = None  # type: ignore[misc]
    assert m.method == "INVITE"  # a reply's: its CSeq's (the getter)
    with pytest.raises(SipParseError):
        m.via  # noqa: B018  (missing: the getter's 400)
    with pytest.raises(TypeError):
        fast.cached_value(1, len)
    # on anything but a message: the getter decides
    assert fast.cached_value("via", repr).__get__(5, int) == "5"


CALL_IDS = ["Call-ID: c1@h", "i: a-b.c", "Call-ID:  c2 ", "Call-ID: a b", "Call-ID: a\tb",
            "Call-ID:", "Call-ID: x\r\n y", "Call-ID: \u00e9t\u00e9"]
CSEQS = ["CSeq: 1 REGISTER", "CSeq: 007 REGISTER", "CSeq: 123456789 REGISTER",
         "CSeq: 1234567890 REGISTER", "CSeq: 2 INVITE", "CSeq: 3  REGISTER", "CSeq: 4 REGISTERX",
         "CSeq: x REGISTER", "CSeq: 5 register", "CSeq: 6\tREGISTER", "CSeq:", "CSeq: 7 FOO"]


@pytest.mark.parametrize("method", ["REGISTER", "FOO"])
@pytest.mark.parametrize("callid", [*CALL_IDS, None, "Call-ID: c1\r\ni: c2"])
@pytest.mark.parametrize("cseq", [*CSEQS, None, "CSeq: 1 REGISTER\r\nCSeq: 1 REGISTER"])
def test_request_call_id_and_cseq_read_as_the_properties(method: str, callid: str | None,
                                                         cseq: str | None) -> None:
    """A request's Call-ID and CSeq, parsed in the descriptor on their first read (the usual
    shapes), give what the pure getters give, errors included, and leave the same cache."""
    lines = [f"{method} sip:a@h SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "To: <sip:a@h>",
             *(x for x in (callid, cseq) if x is not None)]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def reads(m: SipMsg, read: Callable[[SipMsg, str], object]) -> list[object]:
        seen: list[object] = []
        for name in ("cseq", "call_id", "cseq", "call_id"):
            try:
                seen.append(repr(read(m, name)))
            except SipParseError as exc:
                seen.append(("raised", exc.status, str(exc)))
        return [*seen, repr(m._cache)]

    try:
        # parsed once first: the parser's header-name cache then knows this message's names,
        # so both messages take the same way through the parser (whether an earlier test
        # taught it "i" decides between the compiled pass and the careful one, and which
        # headers the parse itself leaves in the cache)
        parse_datagram(data)
        compiled, pure = parse_datagram(data), parse_datagram(data)
    except SipParseError:
        return
    assert reads(compiled, getattr) == reads(pure, _read_pure)


NAME_ADDRS = ["<sip:a@h>;tag=t1", "sip:a@h;tag=t2", '"Al" <sip:a@h>', "Al Bo <sip:a@h>;x=1;tag=3",
              "<sip:a@h", "", "  <sip:a@h>  ", "*", "<sip:\u00e9@h>", "<sip:a@h>;tag=a\r\n b"]


@pytest.mark.parametrize("start", ["REGISTER sip:h SIP/2.0", "SIP/2.0 200 OK"])
@pytest.mark.parametrize("header", ["From", "To", "f", "t"])
@pytest.mark.parametrize("value", [*NAME_ADDRS, None, "twice"])
def test_from_and_to_read_as_the_properties(start: str, header: str, value: str | None) -> None:
    """A message's From and To, parsed in the descriptor on their first read (the shapes of
    name_addr_fields), give what the pure getters give, errors included, and leave the same
    cache; none, several or another shape go to the getter."""
    lines = [start, "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "Call-ID: c", "CSeq: 1 REGISTER"]
    other = "To" if header in ("From", "f") else "From"
    lines.append(f"{other}: <sip:o@h>;tag=o")
    if value == "twice":
        lines += [f"{header}: <sip:a@h>", f"{header}: <sip:b@h>"]
    elif value is not None:
        lines.append(f"{header}: {value}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def reads(m: SipMsg, read: Callable[[SipMsg, str], object]) -> list[object]:
        seen: list[object] = []
        for name in ("from_", "to", "from_", "to"):
            try:
                got = read(m, name)
                seen.append((repr(got), type(got), got.tag, dict(got.params)))  # type: ignore[attr-defined]
            except SipParseError as exc:
                seen.append(("raised", exc.status, str(exc)))
        return [*seen, repr(m._cache)]

    try:
        parse_datagram(data)  # (the parser's header-name cache, as in the test above)
        compiled, pure = parse_datagram(data), parse_datagram(data)
    except SipParseError:
        return
    compiled._cache.pop("to", None)  # (a request's To is parsed ahead: read here instead)
    pure._cache.pop("to", None)
    assert reads(compiled, getattr) == reads(pure, _read_pure)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["branch", "rport", "RPort", "received", "x"]),
                          st.one_of(st.none(), word)), max_size=4), st.booleans())
def test_params_ahead_read_as_the_property(items: list[tuple[str, str | None]],
                                           request: bool) -> None:
    """A request's top Via has its params split by the parser: the same mapping reading them
    would make; anything read through the compiled descriptor is what the property gives."""
    ptext = "".join(f";{n}" + (f"={v}" if v is not None else "") for n, v in items)
    start = "INVITE sip:a@b SIP/2.0" if request else "SIP/2.0 200 OK"
    m = parse_datagram(f"{start}\r\nVia: SIP/2.0/UDP h:5{ptext}\r\n\r\n".encode())
    fresh = headers_mod.parse_via(m.via.raw)  # its params not read yet
    pure = values_mod._HeaderValue.params_py.fget(fresh)  # type: ignore[attr-defined]
    assert m.via.params == pure and type(m.via.params) is type(pure)
    assert m.via.params is m.via.params  # (split once)
    na = headers_mod.parse_name_addr(f"<sip:a@b>{ptext}")
    assert na.params == values_mod._HeaderValue.params_py.fget(  # type: ignore[attr-defined]
        headers_mod.parse_name_addr(na.raw))


# ---- serialising -----------------------------------------------------------------------------
line_text = st.text(st.sampled_from(["a", "V", ":", " ", "\r", "\u00e9", "\udc80", "\u3000"]),
                    max_size=6)


@settings(max_examples=500, deadline=None)
@given(st.lists(line_text, max_size=6), st.binary(max_size=5), st.integers(-1, 7),
       st.integers(-1, 3), st.lists(line_text, max_size=3), st.booleans())
def test_message_bytes_matches_python(lines: list[str], body: bytes, at: int, drop: int,
                                      insert: list[str], as_tuple: bool) -> None:
    def outcome(fn: Callable[..., bytes], *args: object) -> object:
        try:
            return fn(*args)
        except IndexError:
            return "IndexError"

    ins = tuple(insert) if as_tuple else insert
    assert (outcome(fast.message_bytes, lines, body, at, drop, ins)
            == outcome(edits_mod.message_bytes_py, lines, body, at, drop, ins))
    assert fast.message_bytes(lines, body) == edits_mod.message_bytes_py(lines, body)


def test_message_bytes_refuses_what_it_cannot_take() -> None:
    for args in ((("a",), b""), (["a"], ""), (["a"], b"", 0, 0), (["a"], b"", 0, 0, "x"),
                 ([b"a"], b""), (["a"], b"", 0, 0, [b"x"])):
        with pytest.raises(TypeError):
            fast.message_bytes(*args)


# ---- parameters ------------------------------------------------------------------------------
@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.one_of(text, st.sampled_from(["branch", "RPort", "Tag", "\u00c9x",
                                                            "\u0130", "ß", ""])),
                          st.one_of(st.none(), text)), max_size=5),
       st.sampled_from([";", "", "x"]))
def test_params_trusted_matches_python(items: list[tuple[str, str | None]], lead: str) -> None:
    body = ";".join(name if value is None else f"{name}={value}" for name, value in items)
    for ptext in (lead + body, body):
        start = {"kept": "1"}
        want = syntax_mod.params_trusted_py(ptext, dict(start))
        into = dict(start)
        got = fast.params_trusted(ptext, into)
        assert got is into and got == want and list(got) == list(want)


def test_params_trusted_refuses_what_it_cannot_take() -> None:
    with pytest.raises(TypeError):
        fast.params_trusted(b";a", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.params_trusted(";a", [])  # type: ignore[arg-type]


# ---- the lines a reply copies ----------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["", "via", "from", "to", "call-id", "cseq", "contact", "x"]),
                max_size=14),
       st.one_of(st.none(), st.text("abc.-\u00e9\udc80", max_size=5)),
       st.sampled_from(["{n}-{i}\r", "{n}: <sip:a@b> \r", "{n}:\r\n\t{i}\r", "T :x;y=1\r",
                        "{n}-\u00e9\udc80: v\r"]))
def test_reply_lines_match_python(names: list[str], tag: str | None, shape: str) -> None:
    lines = [shape.format(n=n or "start", i=i) for i, n in enumerate(names)]
    # Equal but not identical keys too (edits add keys built at run time).
    copies = ["".join(list(n)) for n in names]
    assert fast.reply_lines(copies, lines, tag) == reply_mod.reply_lines_py(copies, lines, tag)
    assert fast.reply_lines(names, lines, tag) == reply_mod.reply_lines_py(names, lines, tag)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["", "via", "from", "to", "call-id", "cseq", "x"]), max_size=10),
       st.lists(text, min_size=10, max_size=10))
def test_lines_crc32_matches_python(names: list[str], texts: list[str]) -> None:
    lines = [f"{n}: {t}\r" for n, t in zip(names, texts, strict=False)]
    copies = ["".join(list(n)) for n in names]  # equal, not identical keys
    want = reply_mod.lines_crc32_py(names, lines)
    assert fast.lines_crc32(names, lines) == want
    assert fast.lines_crc32(copies, lines) == want


def test_reply_lines_refuses_what_python_refuses() -> None:
    with pytest.raises(ValueError):
        reply_mod.reply_lines_py(["", "via"], ["x\r"], None)
    with pytest.raises(ValueError):
        fast.reply_lines(["", "via"], ["x\r"], None)
    with pytest.raises(TypeError):
        fast.reply_lines(("via",), ["x"], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.reply_lines(["via"], ["x"], 1)  # type: ignore[arg-type]


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_slot_properties_read_and_set_as_their_pure_forms() -> None:
    data = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n\r\n"
    m = parse_datagram(data)
    for name in message_mod.FIELD_PROPERTIES:
        assert getattr(m, name) == message_mod.properties_py[name].fget(m)
    m.ruri = "sip:c@d"  # through set_ruri, as the property's setter
    assert m.ruri == "sip:c@d" and m.first_line == "INVITE sip:c@d SIP/2.0"
    m._lines[0] = "INVITE sip:x SIP/2.0\r\r"  # (no parse makes this: the getter decides)
    assert m.first_line == "INVITE sip:x SIP/2.0"
    with pytest.raises(AttributeError):
        m.header_keys = []  # type: ignore[misc]
