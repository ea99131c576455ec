"""Typed header values: Via, name-addr (From/To/Contact/Route), CSeq, and the list helpers.

Each parser takes the unfolded value text of one header line (or one comma-separated element)
and raises only SipParseError. Fast paths use str.partition/split; the careful character loops
run only when quotes, angle brackets or odd whitespace are present.
"""

from __future__ import annotations

import re

import attrs

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.uri import SipUri, parse_uri

# Compact header forms (RFC 3261 7.3.3 and later RFCs) -> full lower-case names.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose grammar is a comma-separated list (#rule), so headers() splits them.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via", "contact", "route", "record-route", "path", "service-route",
        "require", "supported", "proxy-require", "unsupported", "allow", "allow-events",
        "accept", "accept-encoding", "accept-language", "content-encoding",
        "content-language", "in-reply-to", "alert-info", "call-info", "error-info",
        "warning", "p-associated-uri", "reason", "security-client", "security-server",
        "security-verify", "accept-contact", "reject-contact", "request-disposition",
    }
)  # fmt: skip

# Methods of RFC 3261 and its extensions: a set hit spares the token check.
METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)  # fmt: skip

TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_SEP_WS_RE = re.compile(r"[ \t]*([/:])[ \t]*")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
# gen-value = token / host / quoted-string: token characters plus ':' '[' ']' (IPv6 hosts).
_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")

# Fast paths for the shapes nearly every message uses. Each is unambiguous (every repeat
# starts with its own delimiter), so matching is linear; anything else takes the careful path.
_TOK = r"[A-Za-z0-9.!%*_+`'~\-]+"
_VAL = r"[A-Za-z0-9.!%*_+`'~\-:\[\]]+"
_PARAMS_FAST = re.compile(rf"{_TOK}(?:={_VAL})?(?:;{_TOK}(?:={_VAL})?)*")
_VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(?:;(.*))?",
    re.S,
)
_NAME_ADDR_FAST = re.compile(r'(?:"([^"\\\r\n]*)" ?)?<([^<>"\s]+)>(?:;(.*))?', re.S)
_ADDR_SPEC_FAST = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:[^;<>\"\s,]+)(?:;(.*))?", re.S)

_UNSET: object = object()


def _bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


def _quote_end(text: str, start: int) -> int:
    """Index just past the quoted-string that opens at ``start`` (backslash escapes honoured)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise _bad("Unterminated quoted string")


def unquote_string(text: str) -> str:
    """The content of a quoted-string without its quotes and backslash escapes."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    return re.sub(r"\\(.)", r"\1", inner, flags=re.S)


def split_commas(value: str) -> list[str]:
    """Split a #rule list on commas outside quotes and <...>; empty elements are dropped."""
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        depth = 0
        start = 0
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            if ch == '"':
                i = _quote_end(value, i)
                continue
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth = max(depth - 1, 0)
            elif ch == "," and depth == 0:
                parts.append(value[start:i])
                start = i + 1
            i += 1
        parts.append(value[start:])
    return [s for p in parts if (s := p.strip())]


def split_semis(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = _quote_end(text, i)
            continue
        if ch == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Header parameters (the text after the first ';'): names lower-cased, LWS allowed
    around '=' and ';', values as written (quoted values keep their quotes)."""
    if _PARAMS_FAST.fullmatch(text) is not None:
        params: dict[str, str | None] = {}
        for item in text.split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
        return params
    return _parse_params_careful(text)


def _parse_params_careful(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in split_semis(text):
        name, eq, value = item.partition("=")
        name = name.strip(" \t")
        if not name or not TOKEN_CHARS.issuperset(name):
            raise _bad("Malformed parameter")
        if eq:
            value = value.strip(" \t")
            if not value:
                raise _bad("Empty parameter value")
            if value[0] == '"':
                if _quote_end(value, 0) != len(value):
                    raise _bad("Garbage after quoted parameter")
            elif not _VALUE_CHARS.issuperset(value):
                raise _bad("Bad parameter value")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


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
        raise _bad("Malformed CSeq")
    num, method = parts
    # RFC 3261 8.1.1.5: a 32-bit unsigned number below 2**31.
    if not num.isdigit() or not num.isascii() or len(num) > 10 or int(num) >= 2**31:
        raise _bad("Bad CSeq number")
    if not TOKEN_CHARS.issuperset(method):
        raise _bad("Bad CSeq method")
    return CSeq(int(num), method)


@attrs.define(slots=True, eq=True)
class Via:
    """One via-parm. ``rport`` is True when the flag is present without a value."""

    protocol: str
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]
    branch: str | None
    received: str | None
    rport: int | bool | None
    raw: str

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def _parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise _bad("Bad port")
    return int(text)


def parse_via(value: str) -> Via:
    """Parse one via-parm (one element of a Via header's comma list)."""
    m = _VIA_FAST.fullmatch(value)
    if m is None:
        return _parse_via_careful(value)
    transport, host, port_text, ptext = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise _bad("Bad port")
    params = parse_params(ptext) if ptext is not None else {}
    rport: int | bool | None = None
    if "rport" in params:
        rv = params["rport"]
        rport = True if rv is None else _parse_port(rv)
    return Via(
        "SIP/2.0",
        transport.upper(),
        host,
        port,
        params,
        params.get("branch"),
        params.get("received"),
        rport,
        value,
    )


def parse_vias(value: str) -> list[Via]:
    """Every via-parm of one Via header value."""
    if "," not in value:
        return [parse_via(value)]
    vias = [parse_via(v) for v in split_commas(value)]
    if not vias:
        raise _bad("Empty Via")
    return vias


def _parse_via_careful(value: str) -> Via:
    raw = value.strip()
    sent, semi, ptext = raw.partition(";")
    parts = sent.split()
    if len(parts) != 2:
        # LWS is allowed around '/' and ':' (RFC 3261 25.1 SLASH, COLON).
        parts = _SEP_WS_RE.sub(r"\1", sent).split()
        if len(parts) != 2:
            raise _bad("Malformed Via")
    proto_text, hostport = parts
    pparts = proto_text.split("/")
    if len(pparts) != 3 or not all(pparts) or not TOKEN_CHARS.issuperset("".join(pparts)):
        raise _bad("Malformed Via protocol")
    if hostport[0] == "[":
        end = hostport.find("]")
        if end < 0 or not _IPV6_CHARS.issuperset(hostport[1:end]):
            raise _bad("Bad Via host")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and tail[0] != ":":
            raise _bad("Bad Via host")
        port = _parse_port(tail[1:]) if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        port = _parse_port(port_text) if colon else None
        if not host or not _HOST_CHARS.issuperset(host):
            raise _bad("Bad Via host")
    params = parse_params(ptext) if semi else {}
    rport: int | bool | None = None
    if "rport" in params:
        rv = params["rport"]
        rport = True if rv is None else _parse_port(rv)
    return Via(
        f"{pparts[0]}/{pparts[1]}",
        pparts[2].upper(),
        host,
        port,
        params,
        params.get("branch"),
        params.get("received"),
        rport,
        raw,
    )


@attrs.define(slots=True, eq=True)
class NameAddr:
    """A name-addr or addr-spec with header params (From, To, Contact, Route, ...).

    ``uri`` is parsed on first access; it is None for a scheme other than sip/sips/tel.
    """

    display: str | None
    uri_text: str
    params: dict[str, str | None]
    is_star: bool
    raw: str
    _uri: object = attrs.field(default=_UNSET, eq=False, repr=False)

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
        return u  # type: ignore[return-value]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        out = f"<{self.uri_text}>"
        if self.display is not None:
            esc = self.display.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{esc}" {out}'
        for k, v in self.params.items():
            out += f";{k}" if v is None else f";{k}={v}"
        return out


def parse_name_addr(value: str, allow_star: bool = False) -> NameAddr:
    """Parse one name-addr / addr-spec with its header params."""
    m = _NAME_ADDR_FAST.fullmatch(value)
    if m is not None:
        display, uri_text, ptext = m.groups()
        if ":" in uri_text:
            params = parse_params(ptext) if ptext is not None else {}
            return NameAddr(display, uri_text, params, False, value)
    m = _ADDR_SPEC_FAST.fullmatch(value)
    if m is not None:
        uri_text, ptext = m.groups()
        params = parse_params(ptext) if ptext is not None else {}
        return NameAddr(None, uri_text, params, False, value)
    return _parse_name_addr_careful(value, allow_star)


def _parse_name_addr_careful(value: str, allow_star: bool) -> NameAddr:
    s = value.strip()
    if not s:
        raise _bad("Empty address")
    if s == "*":
        if not allow_star:
            raise _bad("Unexpected '*'")
        return NameAddr(None, "*", {}, True, s)
    display: str | None = None
    if s[0] == '"':
        end = _quote_end(s, 0)
        display = unquote_string(s[:end])
        rest = s[end:].lstrip()
        if not rest.startswith("<"):
            raise _bad("Quoted display name without <URI>")
    else:
        lt = s.find("<")
        if lt >= 0:
            dn = s[:lt].strip()
            if dn:
                # Unquoted display name: tokens separated by LWS (RFC 3261 25.1).
                if not TOKEN_CHARS.issuperset(dn.replace(" ", "").replace("\t", "")):
                    raise _bad("Bad display name")
                display = " ".join(dn.split())
            rest = s[lt:]
        else:
            rest = ""
    if rest:
        gt = rest.find(">")
        if gt < 0:
            raise _bad("Missing '>'")
        uri_text = rest[1:gt]
        if not uri_text or uri_text != uri_text.strip():
            raise _bad("Bad URI in <>")
        after = rest[gt + 1 :].strip()
        if after and after[0] != ";":
            raise _bad("Garbage after '>'")
        params = parse_params(after[1:]) if after else {}
    else:
        # addr-spec: a ';' ends the URI, what follows are header params (RFC 3261 20).
        uri_text, semi, ptext = s.partition(";")
        uri_text = uri_text.rstrip()
        if not uri_text or " " in uri_text or "\t" in uri_text or ">" in uri_text:
            raise _bad("Bad address")
        params = parse_params(ptext) if semi else {}
    if ":" not in uri_text:
        raise _bad("Address without scheme")
    return NameAddr(display, uri_text, params, False, s)


def parse_name_addr_list(value: str, allow_star: bool = False) -> list[NameAddr]:
    return [parse_name_addr(v, allow_star) for v in split_commas(value)]


def parse_token_list(value: str) -> list[str]:
    """Require/Supported/Proxy-Require style option-tag lists."""
    out = []
    for item in split_commas(value):
        if not TOKEN_CHARS.issuperset(item):
            raise _bad("Bad option tag")
        out.append(item)
    return out


def parse_uint(value: str, what: str, limit: int | None = None) -> int:
    v = value.strip()
    if not v or not v.isdigit() or not v.isascii():
        raise _bad(f"Bad {what}")
    n = int(v) if len(v) < 20 else 2**64
    if limit is not None and n > limit:
        raise _bad(f"{what} out of range")
    return n
