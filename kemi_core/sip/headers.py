"""Parsers of typed header values: Via, name-addr (From/To/Contact/Route/Record-Route), CSeq.

Each parser takes the unfolded text of one value and raises only SipParseError. A fast path
(``*_fast``: one regex match, or a few str operations) takes the usual shape and returns None
for anything else; it captures ;branch / ;tag when it comes first, the other parameters are
split into a dict only when someone reads ``params``. Everything the fast path declines goes
through the strict parser (``*_strict``), which validates piece by piece and decides what
raises. Whatever the fast path accepts, it must parse exactly as the strict one does
(tests/sip/test_sip_fastpaths.py checks it).
"""

from __future__ import annotations

import re

from kemi_core.sip.syntax import (
    COMPACT_FORMS,
    HOST_CHARS,
    IPV6_CHARS,
    LIST_HEADERS,
    METHODS,
    PARAMS,
    TOK,
    TOKEN_CHARS,
    bad,
    name_addr_fields,
    params_trusted,
    parse_params,
    parse_token_list,
    parse_uint,
    quote_end,
    split_commas,
    unquote_string,
    via_fields,
)
from kemi_core.sip.values import CSeq, NameAddr, Via, port_value

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "METHODS",
    "TOKEN_CHARS",
    "CSeq",
    "NameAddr",
    "Via",
    "parse_cseq",
    "parse_cseq_strict",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_name_addr_strict",
    "parse_params",
    "parse_token_list",
    "parse_uint",
    "parse_via",
    "parse_via_strict",
    "parse_vias",
    "split_commas",
]

# The fast paths build the value tuples with tuple.__new__, without a Python-level __new__.
_tuple_new = tuple.__new__
_SEP_WS_RE = re.compile(r"[ \t]*([/:])[ \t]*")
_VIA_FAST = re.compile(
    r"SIP/2\.0/(UDP|TCP|TLS|SCTP|WSS?) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    rf"((?:;branch=({TOK}))?{PARAMS})"
).fullmatch
# A quoted display name, or token words separated by single spaces (what sipp & co send).
_NAME_ADDR_FAST = re.compile(
    rf'(?:"([^"\\\r\n]*)" ?|({TOK}(?: {TOK})*) ?)?'
    rf'<([A-Za-z][A-Za-z0-9+.\-]*:[^<>"\s]+)>((?:;tag=({TOK}))?{PARAMS})'
).fullmatch
# RFC 3261 20: a URI holding ',', '?' or ';' must be in <>, so an addr-spec has none.
_ADDR_SPEC_FAST = re.compile(
    rf"([A-Za-z][A-Za-z0-9+.\-]*:[^;<>\"\s,?]+)((?:;tag=({TOK}))?{PARAMS})"
).fullmatch
# Port numbers seen, as text: a dict hit instead of int() (bounded: junk cannot grow it).
_PORTS: dict[str, int] = {}
_SMALL_INTS = {str(i): i for i in range(1000)}


def parse_cseq(value: str) -> CSeq:
    num, sp, method = value.partition(" ")
    if sp and method in METHODS and len(num) < 10 and num.isdigit() and num.isascii():
        n = _SMALL_INTS.get(num)
        return _tuple_new(CSeq, (int(num) if n is None else n, method))
    return parse_cseq_strict(value)


def parse_cseq_strict(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise bad("Malformed CSeq")
    num, method = parts
    # RFC 3261 8.1.1.5: a 32-bit unsigned number below 2**31.
    if not num.isdigit() or not num.isascii() or len(num) > 10 or int(num) >= 2**31:
        raise bad("Bad CSeq number")
    if not TOKEN_CHARS.issuperset(method):
        raise bad("Bad CSeq method")
    return CSeq(int(num), method)


def parse_via(value: str) -> Via:
    """Parse one via-parm (one element of a Via header's comma list)."""
    if via_fields is not None:  # compiled: the same shapes as _VIA_FAST, same fields
        fields = via_fields(value)
        return parse_via_strict(value) if fields is None else _tuple_new(Via, fields)
    m = _VIA_FAST(value)
    if m is None:
        return parse_via_strict(value)
    transport, host, port, ptext, branch = m.groups()
    if port is not None:
        n = _PORTS.get(port)
        if n is None:
            n = int(port)
            if n > 65535:
                raise bad("Bad port")
            if len(_PORTS) < 512:
                _PORTS[port] = n
        port = n
    if branch is None and ptext:
        branch = params_trusted(ptext, {}).get("branch")  # not the first parameter
    return _tuple_new(Via, ("SIP/2.0", transport, host, port, value, branch, ptext))


def parse_vias(value: str) -> list[Via]:
    """Every via-parm of one Via header value."""
    if "," not in value:
        return [parse_via(value)]
    vias = [parse_via(v) for v in split_commas(value)]
    if not vias:
        raise bad("Empty Via")
    return vias


def parse_via_strict(value: str) -> Via:
    raw = value.strip()
    sent, semi, ptext = raw.partition(";")
    parts = sent.split()
    if len(parts) != 2:
        # LWS is allowed around '/' and ':' (RFC 3261 25.1 SLASH, COLON).
        parts = _SEP_WS_RE.sub(r"\1", sent).split()
        if len(parts) != 2:
            raise bad("Malformed Via")
    proto_text, hostport = parts
    pparts = proto_text.split("/")
    if len(pparts) != 3 or not all(pparts) or not TOKEN_CHARS.issuperset("".join(pparts)):
        raise bad("Malformed Via protocol")
    if hostport[0] == "[":
        end = hostport.find("]")
        if end < 0 or not IPV6_CHARS.issuperset(hostport[1:end]):
            raise bad("Bad Via host")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and tail[0] != ":":
            raise bad("Bad Via host")
        port = port_value(tail[1:]) if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_value(port_text) if colon else None
        if not host or not HOST_CHARS.issuperset(host):
            raise bad("Bad Via host")
    params = parse_params(ptext) if semi else {}
    return Via(
        f"{pparts[0]}/{pparts[1]}",
        pparts[2].upper(),
        host,
        port,
        raw,
        params=params,
    )


def parse_name_addr(value: str, allow_star: bool = False) -> NameAddr:
    """Parse one name-addr / addr-spec with its header params."""
    if name_addr_fields is not None:  # compiled: the shapes of both fast regexes, same fields
        fields = name_addr_fields(value)
        if fields is None:
            return parse_name_addr_strict(value, allow_star)
        return _tuple_new(NameAddr, fields)
    m = _NAME_ADDR_FAST(value)
    if m is not None:
        display, words, uri_text, ptext, tag = m.groups()
        if words is not None:
            display = words
    else:
        m = _ADDR_SPEC_FAST(value)
        if m is None:
            return parse_name_addr_strict(value, allow_star)
        uri_text, ptext, tag = m.groups()
        display = None
    if tag is None and ptext:
        tag = params_trusted(ptext, {}).get("tag")  # not the first parameter
    return _tuple_new(NameAddr, (display, uri_text, False, value, tag, ptext))


def parse_name_addr_strict(value: str, allow_star: bool = False) -> NameAddr:
    s = value.strip()
    if not s:
        raise bad("Empty address")
    if s == "*":
        if not allow_star:
            raise bad("Unexpected '*'")
        return NameAddr(None, "*", True, s, params={})
    display: str | None = None
    if s[0] == '"':
        end = quote_end(s, 0)
        display = unquote_string(s[:end])
        rest = s[end:].lstrip()
        if not rest.startswith("<"):
            raise bad("Quoted display name without <URI>")
    else:
        lt = s.find("<")
        if lt >= 0:
            dn = s[:lt].strip()
            if dn:
                # Unquoted display name: tokens separated by LWS (RFC 3261 25.1).
                if not TOKEN_CHARS.issuperset(dn.replace(" ", "").replace("\t", "")):
                    raise bad("Bad display name")
                display = " ".join(dn.split())
            rest = s[lt:]
        else:
            rest = ""
    if rest:
        gt = rest.find(">")
        if gt < 0:
            raise bad("Missing '>'")
        uri_text = rest[1:gt]
        # RFC 3261 25.1: no LWS inside <...> (RFC 4475 3.1.2.15 badaspec).
        if not uri_text or uri_text != uri_text.strip() or "<" in uri_text:
            raise bad("Bad URI in <>")
        after = rest[gt + 1 :].strip()
        if after and after[0] != ";":
            raise bad("Garbage after '>'")
        params = parse_params(after[1:]) if after else {}
    else:
        # addr-spec: a ';' ends the URI, what follows are header params (RFC 3261 20).
        uri_text, semi, ptext = s.partition(";")
        uri_text = uri_text.rstrip()
        if not uri_text or any(c in uri_text for c in ' \t<>"?,'):
            # RFC 4475 3.1.2.13 (regbadct): a URI with headers must be in <>.
            raise bad("Bad address")
        params = parse_params(ptext) if semi else {}
    if ":" not in uri_text:
        raise bad("Address without scheme")
    return NameAddr(display, uri_text, False, s, params=params)


def parse_name_addr_list(value: str, allow_star: bool = False) -> list[NameAddr]:
    return [parse_name_addr(v, allow_star) for v in split_commas(value)]
