"""bytes -> SipMsg. Like Kamailio's parse_msg: only the first line and the header boundaries
are found here; header values are decoded and parsed on first access (see message.py).

The head is decoded once (UTF-8 with surrogateescape, so any byte survives the round trip)
and split on LF; each line keeps its CR, so joining with LF gives back the exact bytes. Header
names are resolved through a cache keyed by the text before the colon (syntax.index_head,
compiled in _fast.c when built): a typical message costs one dict lookup per line. A line
whose name is not in the cache (folding, junk, a name not seen before) or that lacks its CR
sends the head through the careful path, which validates every name and gives LF-only lines
their CR. Only SipParseError leaves this module, whatever the input.
"""

from __future__ import annotations

import sys

import attrs

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.message import SipMsg
from kemi_core.sip.syntax import (
    COMPACT_FORMS,
    METHODS,
    TOKEN_CHARS,
    datagram_parser,
    index_head,
    line_value,
    scan_message,
    single_index,
    value_types,
)
from kemi_core.sip.values import CSeq, NameAddr, Via

if value_types is not None:
    # the compiled pass parses the top Via, a reply's CSeq and a request's To ahead
    value_types(Via, CSeq, NameAddr)

# Headers RFC 3261 8.1.1 requires in every request (and 8.2.6 copies into every reply).
MANDATORY = ("via", "from", "to", "call-id", "cseq")

# Text before the colon (b"Via", "v ", "CSeq") -> canonical key. Only names of well-formed
# lines get in, and it is bounded so that garbage cannot grow it.
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 4096
# A whole well-formed "Content-Length: 171\r" line -> 171 (bounded like the name cache).
_CL_LINES: dict[str, int] = {}
_CL_LINES_MAX = 4096


@attrs.frozen
class ParseLimits:
    """Per-message limits; going past one is a SipParseError (413 for size, else 400)."""

    max_message_size: int = 65535
    max_headers: int = 256
    max_header_line: int = 8192
    #: refuse messages missing Via/From/To/Call-ID/CSeq (RFC 3261 8.1.1) at parse time. Off by
    #: default: RFC 4475 3.3.1 wants the parser not to break on them; reading the missing
    #: header (msg.from_, ...) raises the 400 instead.
    require_mandatory: bool = False
    #: a message on a stream without Content-Length has no body (core tcp_accept_no_cl);
    #: off, it loses the framing (StreamBuffer)
    accept_no_cl: bool = False


DEFAULT_LIMITS = ParseLimits()
_STATUS_CODES = {str(i): i for i in range(100, 1000)}  # what _parse_first_line accepts
_new_msg = object.__new__


def _name_key(line: str) -> str:
    """Canonical key of a header line's name, validating it (careful path)."""
    colon = line.find(":")
    if colon <= 0:
        raise SipParseError(400, "Malformed header line")
    raw = line[:colon]
    name = raw.rstrip(" \t")
    if not name or not TOKEN_CHARS.issuperset(name):
        raise SipParseError(400, "Bad header name")
    key = name.lower()
    # Interned, so list scans for a key hit on identity.
    key = sys.intern(COMPACT_FORMS.get(key, key))
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[raw] = key
    return key


class _HeadEndsEarly(SipParseError):
    """An empty line inside what was taken for the head (bare-LF framing): re-split."""

    def __init__(self) -> None:
        super().__init__(400, "Empty line inside the header")


def _index_careful(lines: list[str]) -> tuple[list[str], list[str]]:
    """Join folded lines to their header, give every line its CR, validate every name."""
    out = [lines[0] if lines[0].endswith("\r") else lines[0] + "\r"]
    names = [""]
    for line in lines[1:]:
        if line == "" or line == "\r":
            raise _HeadEndsEarly
        if "\r" in line[:-1]:
            raise SipParseError(400, "Bare CR in header")
        if line[:1] in (" ", "\t"):
            if len(out) == 1:
                raise SipParseError(400, "Continuation line before any header")
            # Obsolete line folding (RFC 3261 7.3.1): keep the bytes, unfold on read.
            out[-1] += "\n" + (line if line.endswith("\r") else line + "\r")
            continue
        names.append(_name_key(line))
        out.append(line if line.endswith("\r") else line + "\r")
    return out, names


def _parse_first_line(msg: SipMsg, line: str) -> None:
    """Careful start-line parser (the usual request line is handled in parse_head)."""
    text = line[:-1] if line.endswith("\r") else line
    if text[:4].upper() == "SIP/":
        parts = text.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError(400, "Malformed status line")
        _check_version(parts[0])
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise SipParseError(400, "Bad status code")
        msg.is_request = False
        msg.status = int(code)
        msg.reason = parts[2] if len(parts) == 3 else ""
        msg.version = parts[0]
        msg._method = ""
        msg._ruri = ""
        return
    parts = text.split(" ")
    if len(parts) != 3:
        # RFC 4475 3.1.2.9 (lwsstart) / 3.1.2.10 (trws): extra SP around the elements may be
        # ignored by a liberal element; a space inside the URI still leaves 4+ parts.
        parts = [p for p in parts if p]
        if len(parts) != 3 or text[:1] == " ":
            raise SipParseError(400, "Malformed request line")
    method, ruri, version = parts
    if not method or not TOKEN_CHARS.issuperset(method):
        raise SipParseError(400, "Bad method")
    if not ruri:
        raise SipParseError(400, "Empty Request-URI")
    if "\t" in ruri or "\x00" in ruri:
        raise SipParseError(400, "Bad Request-URI")
    _check_version(version)
    msg.is_request = True
    msg._method = method
    msg._ruri = ruri
    msg.status = 0
    msg.reason = ""
    msg.version = version


def _check_version(version: str) -> None:
    if version == "SIP/2.0":
        return
    up = version.upper()
    if up == "SIP/2.0":
        return
    major, dot, minor = up[4:].partition(".")
    if up.startswith("SIP/") and dot and major.isdigit() and minor.isdigit():
        raise SipParseError(505, "Version Not Supported")
    raise SipParseError(400, "Bad SIP version")


def parse_head(
    head: bytes, limits: ParseLimits = DEFAULT_LIMITS, body: bytes = b"", buf: bytes | None = None
) -> SipMsg:
    """Parse the start line and the header boundaries of ``head`` (the bytes before the empty
    line; the CRLF or LF ending the last header may be there or not). ``body`` and ``buf``
    (the bytes parsed from) are attached as they are."""
    text = head.decode("utf-8", "surrogateescape")
    indexed = index_head(text, _NAME_CACHE)
    if indexed is not None:
        lines, names = indexed
    else:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
    if len(lines) > limits.max_headers + 1:
        raise SipParseError(400, "Too Many Headers")
    if len(text) > limits.max_header_line and max(map(len, lines)) > limits.max_header_line:
        raise SipParseError(400, "Header Line Too Long")
    if indexed is None:
        lines, names = _index_careful(lines)
    msg = _new_msg(SipMsg)
    msg._lines = lines
    msg._names = names  # type: ignore[assignment]
    msg._body = body
    msg._buf = buf
    msg._cache = {}
    first = lines[0].split(" ")
    if len(first) == 3 and first[2] == "SIP/2.0\r" and first[0] in METHODS and first[1]:
        # The usual request line: nothing more to check now (the URI is parsed lazily).
        msg.is_request = True
        msg._method = first[0]
        msg._ruri = first[1]
        msg.status = 0
        msg.reason = ""
        msg.version = "SIP/2.0"
    elif (
        first[0] == "SIP/2.0"
        and len(first) > 2
        and first[1] in _STATUS_CODES
        and first[-1][-1:] == "\r"
    ):
        # The usual status line "SIP/2.0 200 OK": what _parse_first_line makes of it.
        msg.is_request = False
        msg.status = _STATUS_CODES[first[1]]
        msg.reason = lines[0][12:-1]
        msg.version = "SIP/2.0"
        msg._method = ""
        msg._ruri = ""
    else:
        _parse_first_line(msg, lines[0])
    return msg


def content_length_of(msg: SipMsg) -> int | None:
    """The Content-Length the message declares (None when absent); several are an error."""
    names = msg._names
    if "content-length" not in names:
        return None
    i = names.index("content-length")
    if i + 1 < len(names) and "content-length" in names[i + 1 :]:
        raise SipParseError(400, "Multiple Content-Length headers")
    line = msg._lines[i]
    text = line[line.find(":") + 1 :].strip(" \t\r")
    if not text.isdigit() or len(text) > 10 or not text.isascii():
        text = line_value(line)  # folded?
        if not text.isdigit() or len(text) > 10 or not text.isascii():
            raise SipParseError(400, "Bad Content-Length")
        return int(text)
    n = int(text)
    if len(_CL_LINES) < _CL_LINES_MAX:
        _CL_LINES[line] = n
    return n


def check_mandatory(msg: SipMsg, limits: ParseLimits) -> None:
    if limits.require_mandatory:
        names = msg._names
        if not ("via" in names and "from" in names and "to" in names and "call-id" in names
                and "cseq" in names):  # fmt: skip
            for key in MANDATORY:
                if key not in names:
                    raise SipParseError(400, f"Missing {key} header")


def _split_careful(data: bytes) -> tuple[bytes, bytes]:
    """(head, rest) for a datagram with bare-LF lines or no empty line (leading CRLFs gone)."""
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            # No empty line at all: everything is headers (tolerated), there is no body.
            return data, b""
        nxt = nl + 1
        if data[nxt : nxt + 1] == b"\n":
            return data[:nxt], data[nxt + 1 :]
        if data[nxt : nxt + 2] == b"\r\n":
            return data[:nxt], data[nxt + 2 :]
        pos = nxt


def parse_datagram_py(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMsg:
    """Parse one UDP datagram. Raises only SipParseError."""
    if scan_message is not None:
        # The usual datagram in one compiled pass (_fast.c) that makes the message (its top
        # Via, a reply's CSeq and a request's Max-Forwards parsed); None: the careful path below.
        msg = scan_message(data, _NAME_CACHE, METHODS, limits.max_message_size,
                           limits.max_headers, limits.max_header_line)
        if msg is not None:
            if limits.require_mandatory:
                check_mandatory(msg, limits)
            return msg  # type: ignore[no-any-return]
    return _parse_careful(data, limits)


def _parse_careful(data: bytes, limits: ParseLimits) -> SipMsg:
    """parse_datagram of what the compiled pass left (or of everything, without it)."""
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > limits.max_message_size:
        raise SipParseError(413, "Message Too Large")
    if data.startswith((b"\r", b"\n")):  # (bytes "in" tries int membership first: slow)
        # RFC 3261 7.5: CRLFs before the start line are ignored.
        data = data.lstrip(b"\r\n")
    he = data.find(b"\r\n\r\n")
    try:
        if he <= 0:
            raise _HeadEndsEarly
        # The head up to the last header's CR: every line then ends in CR, none is empty.
        msg = parse_head(data[: he + 1], limits, data[he + 4 :], data)
    except _HeadEndsEarly:
        head, body = _split_careful(data)
        if not head.strip():
            raise SipParseError(400, "Empty message") from None
        msg = parse_head(head, limits, body, data)
    names = msg._names
    if limits.require_mandatory:
        check_mandatory(msg, limits)
    i = single_index(names, "content-length")
    # Without one the body is the rest of the datagram (allowed on UDP, RFC 3261 18.3).
    if i != -1:
        # The usual single "Content-Length: 171" line: one dict hit for the whole line.
        cl = _CL_LINES.get(msg._lines[i]) if i >= 0 else None
        if cl is None:
            cl = content_length_of(msg) or 0  # (never None here: the header is there)
        body = msg._body
        if cl != len(body):
            if cl > len(body):
                raise SipParseError(400, "Content-Length larger than body")
            # RFC 3261 18.3: bytes past Content-Length in a datagram are discarded.
            msg._buf = data[: len(data) - len(body) + cl]
            msg._body = body[:cl]
    return msg


parse_datagram = parse_datagram_py
if datagram_parser is not None:
    # Compiled (_fast.c): the usual datagram straight from scan_message's pass, without a
    # Python call around it (every received datagram comes here); the rest as above.
    parse_datagram = datagram_parser(parse_datagram_py, _parse_careful, _NAME_CACHE, METHODS,
                                     DEFAULT_LIMITS)
