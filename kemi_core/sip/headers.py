"""Typed header values: Via, name-addr (From/To/Contact/Route/Record-Route), CSeq.

Each parser takes the unfolded text of one value and raises only SipParseError. A fast regex
takes the usual shape in one match and captures ;branch / ;tag when it comes first; the other
parameters are split into a dict only when someone reads ``params``. Anything else goes through
a careful parser that validates piece by piece.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from kemi_core.sip.errors import SipParseError
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
    format_params,
    params_trusted,
    parse_params,
    parse_token_list,
    parse_uint,
    quote_end,
    split_commas,
    unquote_string,
)
from kemi_core.sip.uri import SipUri, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "METHODS",
    "TOKEN_CHARS",
    "CSeq",
    "NameAddr",
    "Via",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_token_list",
    "parse_uint",
    "parse_via",
    "parse_vias",
    "split_commas",
]

_SEP_WS_RE = re.compile(r"[ \t]*([/:])[ \t]*")
_VIA_FAST = re.compile(
    r"SIP/2\.0/(UDP|TCP|TLS|SCTP|WSS?) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    rf"(?:;branch=({TOK}))?({PARAMS})"
)
_NAME_ADDR_FAST = re.compile(
    rf'(?:"([^"\\\r\n]*)" ?)?<([A-Za-z][A-Za-z0-9+.\-]*:[^<>"\s]+)>(?:;tag=({TOK}))?({PARAMS})'
)
# RFC 3261 20: a URI holding ',', '?' or ';' must be in <>, so an addr-spec has none.
_ADDR_SPEC_FAST = re.compile(
    rf"([A-Za-z][A-Za-z0-9+.\-]*:[^;<>\"\s,?]+)(?:;tag=({TOK}))?({PARAMS})"
)
_UNSET: Any = object()


@attrs.define(slots=True, eq=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    num, sp, method = value.partition(" ")
    if sp and method in METHODS and len(num) < 10 and num.isdigit() and num.isascii():
        return CSeq(int(num), method)
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


@attrs.define(slots=True, eq=False, repr=False)
class Via:
    """One via-parm. ``rport`` is True when the flag is present without a value.

    Build it with parse_via; ``Via(protocol, transport, host, port, raw, params=...)`` also works.
    """

    protocol: str
    transport: str
    host: str
    port: int | None
    raw: str
    # A ;branch= that came first, and the parameter text after it: split on demand.
    _branch: str | None = None
    _ptext: str = ""
    _params: dict[str, str | None] | None = None

    @property
    def params(self) -> dict[str, str | None]:
        p = self._params
        if p is None:
            p = {} if self._branch is None else {"branch": self._branch}
            if self._ptext:
                params_trusted(self._ptext, p)
            self._params = p
        return p

    @property
    def branch(self) -> str | None:
        b = self._branch
        return b if b is not None else self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received") if self._ptext or self._params else None

    @property
    def rport(self) -> int | bool | None:
        if not (self._ptext or self._params) or "rport" not in self.params:
            return None
        rv = self.params["rport"]
        return True if rv is None else _port(rv)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.protocol, self.transport, self.host.lower(), self.port, self.params) == (
            other.protocol, other.transport, other.host.lower(), other.port, other.params,
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Via({self.raw!r})"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def _port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise bad("Bad port")
    return int(text)


def parse_via(value: str) -> Via:
    """Parse one via-parm (one element of a Via header's comma list)."""
    m = _VIA_FAST.fullmatch(value)
    if m is None:
        return _parse_via_careful(value)
    transport, host, port, branch, ptext = m.groups()
    if port is not None:
        port = int(port)
        if port > 65535:
            raise bad("Bad port")
    return Via("SIP/2.0", transport, host, port, value, branch, ptext)


def parse_vias(value: str) -> list[Via]:
    """Every via-parm of one Via header value."""
    if "," not in value:
        return [parse_via(value)]
    vias = [parse_via(v) for v in split_commas(value)]
    if not vias:
        raise bad("Empty Via")
    return vias


def _parse_via_careful(value: str) -> Via:
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
        port = _port(tail[1:]) if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        port = _port(port_text) if colon else None
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


@attrs.define(slots=True, eq=False, repr=False)
class NameAddr:
    """A name-addr or addr-spec with header params (From, To, Contact, Route, ...).

    ``uri`` is parsed on first access; it is None for a scheme other than sip/sips/tel (and for
    the ``*`` Contact). ``display`` is the display name without quotes and escapes.
    """

    display: str | None
    uri_text: str
    is_star: bool
    raw: str
    _tag: str | None = None
    _ptext: str = ""
    _params: dict[str, str | None] | None = None
    _uri: Any = _UNSET

    @property
    def params(self) -> dict[str, str | None]:
        p = self._params
        if p is None:
            p = {} if self._tag is None else {"tag": self._tag}
            if self._ptext:
                params_trusted(self._ptext, p)
            self._params = p
        return p

    @property
    def tag(self) -> str | None:
        t = self._tag
        return t if t is not None else self.params.get("tag")

    @property
    def uri(self) -> SipUri | None:
        u = self._uri
        if u is _UNSET:
            if self.is_star:
                u = None
            else:
                try:
                    u = parse_uri(self.uri_text)
                except SipParseError as exc:
                    if exc.status != 416:
                        raise
                    u = None
            self._uri = u
        return u  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display, self.uri_text, self.is_star, self.params) == (
            other.display, other.uri_text, other.is_star, other.params,
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NameAddr({self.raw!r})"

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        out = f"<{self.uri_text}>"
        if self.display is not None:
            esc = self.display.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{esc}" {out}'
        return out + format_params(self.params)


def parse_name_addr(value: str, allow_star: bool = False) -> NameAddr:
    """Parse one name-addr / addr-spec with its header params."""
    m = _NAME_ADDR_FAST.fullmatch(value)
    if m is not None:
        display, uri_text, tag, ptext = m.groups()
        return NameAddr(display, uri_text, False, value, tag, ptext)
    m = _ADDR_SPEC_FAST.fullmatch(value)
    if m is not None:
        uri_text, tag, ptext = m.groups()
        return NameAddr(None, uri_text, False, value, tag, ptext)
    return _parse_name_addr_careful(value, allow_star)


def _parse_name_addr_careful(value: str, allow_star: bool) -> NameAddr:
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
