"""The fast paths of the header parsers agree with the strict parsers on well-formed values.

Hypothesis builds the usual shapes (the ones the fast paths are for); each value must take the
fast path and come out exactly as the strict parser makes it.
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import SipParseError, parse_datagram
from kemi_core.sip.headers import (
    _ADDR_SPEC_FAST,
    _NAME_ADDR_FAST,
    _VIA_FAST,
    parse_cseq,
    parse_cseq_strict,
    parse_name_addr,
    parse_name_addr_strict,
    parse_via,
    parse_via_strict,
)
from kemi_core.sip.message import SipMsg
from kemi_core.sip.parser import _parse_first_line
from kemi_core.sip.syntax import METHODS
from kemi_core.sip.values import NameAddr, Via

TOKEN = string.ascii_letters + string.digits + "-.!%*_+`'~"
token = st.text(TOKEN, min_size=1, max_size=10)
value = st.text(TOKEN + ":[]", min_size=1, max_size=12)
label = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=8)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.text("0123456789abcdefABCDEF", max_size=4), min_size=3, max_size=8).map(
    lambda parts: "[" + ":".join(parts) + "]"
)
host = st.one_of(hostname, ipv4, ipv6)
port = st.one_of(
    st.none(), st.integers(0, 65535).map(str), st.text("0123456789", min_size=1, max_size=5)
)
params = st.lists(st.tuples(token, st.one_of(st.none(), value)), max_size=4).map(
    lambda ps: "".join(f";{n}" if v is None else f";{n}={v}" for n, v in ps)
)
first_param = st.one_of(
    st.just(""), token.map(lambda b: f";branch={b}"), token.map(lambda t: f";tag={t}")
)


def hostport(h: str, p: str | None) -> str:
    return h if p is None else f"{h}:{p}"


def outcome(fn: object, *args: object) -> object:
    """The parsed value as plain data, or the status it raised."""
    try:
        v = fn(*args)  # type: ignore[operator]
    except SipParseError as exc:
        return ("raised", exc.status)
    if isinstance(v, Via):
        rport: object
        try:
            rport = v.rport
        except SipParseError as exc:
            rport = ("raised", exc.status)
        return (v.protocol, v.transport, v.host, v.port, v.raw, v.params, v.branch, v.received,
                rport, v.sent_by, str(v))  # fmt: skip
    if isinstance(v, NameAddr):
        return (v.display, v.uri_text, v.is_star, v.raw, v.params, v.tag, str(v))
    return v


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]), host, port, first_param, params)
def test_via_fast_agrees_with_strict(
    transport: str, h: str, p: str | None, first: str, ps: str
) -> None:
    text = f"SIP/2.0/{transport} {hostport(h, p)}{first}{ps}"
    assert _VIA_FAST(text) is not None
    assert outcome(parse_via, text) == outcome(parse_via_strict, text)


display = st.one_of(
    st.none(),
    st.text(
        st.characters(blacklist_characters='"\\\r\n', blacklist_categories=("Cs",)), max_size=10
    ).map(lambda d: f'"{d}" '),
    st.text(
        st.characters(blacklist_characters='"\\\r\n', blacklist_categories=("Cs",)), max_size=10
    ).map(lambda d: f'"{d}"'),
    st.lists(token, min_size=1, max_size=3).map(lambda ws: " ".join(ws) + " "),
    token,
)
user = st.text(string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/%", min_size=1, max_size=8)
sip_uri = st.tuples(
    st.sampled_from(["sip", "sips", "SIP", "tel"]), st.one_of(st.none(), user), host, port, params
).map(lambda t: f"{t[0]}:{'' if t[1] is None else t[1] + '@'}{hostport(t[2], t[3])}{t[4]}")


@settings(max_examples=300, deadline=None)
@given(display, sip_uri, first_param, params)
def test_name_addr_fast_agrees_with_strict(d: str | None, uri: str, first: str, ps: str) -> None:
    text = f"{d or ''}<{uri}>{first}{ps}"
    assert _NAME_ADDR_FAST(text) is not None
    assert outcome(parse_name_addr, text) == outcome(parse_name_addr_strict, text)
    # The URI is parsed (or refused) the same whichever path made the NameAddr.
    assert outcome(lambda t: parse_name_addr(t).uri, text) == outcome(
        lambda t: parse_name_addr_strict(t).uri, text
    )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sip", "sips", "tel"]), user, host, first_param, params)
def test_addr_spec_fast_agrees_with_strict(
    scheme: str, u: str, h: str, first: str, ps: str
) -> None:
    text = f"{scheme}:{u.replace(';', '').replace('?', '').replace(',', '') or 'x'}@{h}{first}{ps}"
    assert _ADDR_SPEC_FAST(text) is not None
    assert outcome(parse_name_addr, text) == outcome(parse_name_addr_strict, text)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(0, 2**31 - 1).map(str), st.text("0123456789", min_size=1, max_size=11)),
       st.sampled_from(sorted(METHODS)))  # fmt: skip
def test_cseq_fast_agrees_with_strict(num: str, method: str) -> None:
    text = f"{num} {method}"
    assert outcome(parse_cseq, text) == outcome(parse_cseq_strict, text)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(100, 999), st.text(string.ascii_letters + string.digits + " -.\t\r", max_size=20)
)
def test_status_line_fast_agrees_with_strict(code: int, reason: str) -> None:
    first = f"SIP/2.0 {code} {reason}"
    m = parse_datagram(f"{first}\r\nCSeq: 1 INVITE\r\n\r\n".encode())
    ref: SipMsg = object.__new__(SipMsg)
    _parse_first_line(ref, first + "\r")
    got = (m.is_request, m.status, m.reason, m.version, m._method, m._ruri)
    assert got == (ref.is_request, ref.status, ref.reason, ref.version, ref._method, ref._ruri)
