"""Build a reply to a request the way RFC 3261 8.2.6 says (what Kamailio's sl/tm send)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.message import SipMsg, line_value
from kemi_core.sip.syntax import PURE_PYTHON

# Header lines copied verbatim from the request, in the request's order per name.
_COPIED = ("via", "from", "to", "call-id", "cseq")


def _clean(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"CR/LF not allowed in {what}")
    return text


_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=", re.I)


def _has_tag(req: SipMsg) -> bool:
    """Whether the request's To carries a tag; read leniently when the To is malformed, so a
    400 can still be built for it."""
    try:
        return req.to.tag is not None
    except SipParseError:
        value = req.header("to") or ""
        return _TAG_RE.search(value[value.rfind(">") + 1 :]) is not None


def reply_lines_py(names: list[str], lines: list[str]) -> tuple[list[str], int, int]:
    """The request's lines a reply copies (RFC 3261 8.2.6.2): Via, From, To, Call-ID, CSeq,
    grouped in that order, each group in the request's order; with where the To lines are.
    kemi_core/sip/_fast.c has the compiled form (reply_lines), used when built."""
    groups: dict[str, list[str]] = {k: [] for k in _COPIED}
    for name, line in zip(names, lines, strict=True):  # parallel lists
        group = groups.get(name)
        if group is not None:
            group.append(line)
    to_start = len(groups["via"]) + len(groups["from"])
    return ([line for group in groups.values() for line in group], to_start,
            to_start + len(groups["to"]))


try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import reply_lines
except ImportError:  # not built: same result, slower
    reply_lines = reply_lines_py


def build_reply(
    req: SipMsg,
    status: int,
    reason: str,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """Reply bytes for ``req``: all Via lines in order, From, To (``;tag=to_tag`` added when
    given, the To has none and the status is not 100), Call-ID, CSeq, Timestamp for a 100
    (RFC 3261 8.2.6.1), then ``headers``, Content-Type when given, and Content-Length.

    Works for malformed requests too (the lines are copied as they are), so a 400 can be
    built for anything parse_datagram accepted.
    """
    if not req.is_request:
        raise ValueError("build_reply needs a request")
    if not 100 <= status <= 699:
        raise ValueError(f"bad status code {status}")
    lines = req._lines
    names = req._names
    tag = None
    if to_tag and status != 100 and not _has_tag(req):
        tag = _clean(to_tag, "tag")
    out = [f"SIP/2.0 {status} {_clean(reason, 'reason')}\r"]
    copied, to_start, to_end = reply_lines(names, lines)
    if tag is not None:
        copied[to_start:to_end] = [f"{line[: line.find(':')]}: {line_value(line)};tag={tag}\r"
                                   for line in copied[to_start:to_end]]
    out += copied
    if status == 100 and "timestamp" in names:
        out.append(lines[names.index("timestamp")])
    for name, value in headers:
        line = f"{name}: {value}\r"
        if "\n" in line or "\r" in line[:-1]:
            raise ValueError(f"CR/LF not allowed in header {name!r}")
        out.append(line)
    if content_type is not None:
        out.append(f"Content-Type: {_clean(content_type, 'Content-Type')}\r")
    out.append(f"Content-Length: {len(body)}\r")
    head = "\n".join(out).encode("utf-8", "surrogateescape")
    return b"%s\n\r\n%s" % (head, bytes(body))


__all__ = ["build_reply", "SipParseError"]
