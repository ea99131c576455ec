"""Build a reply to a request the way RFC 3261 8.2.6 says (what Kamailio's sl/tm send)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import Via
from kemi_core.sip.message import SipMsg, line_value
from kemi_core.sip.syntax import PURE_PYTHON, reply_builder, split_commas
from kemi_core.sip.via_stamp import reply_via

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


def reply_lines_py(names: list[str], lines: list[str], tag: str | None) -> list[str]:
    """The request's lines a reply copies (RFC 3261 8.2.6.2): Via, From, To, Call-ID, CSeq,
    grouped in that order, each group in the request's order; each To line gets ``;tag=tag``
    when a tag is given (``Name: value;tag=...``, the value unfolded and stripped).
    kemi_core/sip/_fast.c has the compiled form (reply_lines), used when built."""
    groups: dict[str, list[str]] = {k: [] for k in _COPIED}
    for name, line in zip(names, lines, strict=True):  # parallel lists
        group = groups.get(name)
        if group is not None:
            group.append(line)
    if tag is not None:
        groups["to"] = [f"{line[: line.find(':')]}: {line_value(line)};tag={tag}\r"
                        for line in groups["to"]]
    return [line for group in groups.values() for line in group]


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
    *,
    top_via: str | None = None,
) -> bytes:
    """Reply bytes for ``req``: all Via lines in order, From, To (``;tag=to_tag`` added when
    given, the To has none and the status is not 100), Call-ID, CSeq, Timestamp for a 100
    (RFC 3261 8.2.6.1), then ``headers``, Content-Type when given, and Content-Length.
    ``top_via``: the top Via's value as the reply carries it (``reply_top_via``), when it
    differs from the request's.

    Works for malformed requests too (the lines are copied as they are), so a 400 can be
    built for anything parse_datagram accepted.
    """
    if not req.is_request:
        raise ValueError("build_reply needs a request")
    names = req._names
    out = [_status_line(status, reason)]
    tag = None
    if to_tag and status != 100 and not _has_tag(req):
        tag = _clean(to_tag, "tag")
    out += reply_lines(names, req._lines, tag)
    if top_via is not None and "via" in names:  # (the Vias come first)
        out[1] = _with_top_via(out[1], top_via)
    if status == 100 and "timestamp" in names:
        out.append(req._lines[names.index("timestamp")])
    for name, value in headers:
        line = f"{name}: {value}\r"
        if "\n" in line or "\r" in line[:-1]:
            raise ValueError(f"CR/LF not allowed in header {name!r}")
        out.append(line)
    if content_type is not None:
        out.append(f"Content-Type: {_clean(content_type, 'Content-Type')}\r")
    if not body:  # the usual reply: one join and one encode make the whole datagram
        out += _EMPTY_BODY_END
        return "\n".join(out).encode("utf-8", "surrogateescape")
    out.append(f"Content-Length: {len(body)}\r")
    head = "\n".join(out).encode("utf-8", "surrogateescape")
    return b"%s\n\r\n%s" % (head, bytes(body))


def _with_top_via(line: str, value: str) -> str:
    """A Via line with its first value replaced (the others of a joined line kept)."""
    name = line[: line.find(":")]
    if "," in line:
        values = split_commas(line_value(line), strict=False)
        if len(values) > 1:
            return f"{name}: {value}, {', '.join(values[1:])}\r"
    return f"{name}: {value}\r"


def reply_top_via(req: SipMsg, src_ip: str, src_port: int, force_rport: bool) -> str | None:
    """The top Via's value a reply made here to ``req`` (received from ``src_ip``:``src_port``)
    carries, with ;received and ;rport= as Kamailio writes them (``via_stamp.reply_via``);
    None when it is the request's own or unreadable."""
    try:
        via = req.via
    except SipParseError:
        return None
    return reply_via_of(via, src_ip, src_port, force_rport)


def reply_via_of(via: Via, src_ip: str, src_port: int, force_rport: bool) -> str | None:
    """``reply_top_via`` of a request whose top Via is ``via`` (parsed already: tm keeps the
    received one of a transaction whose saved request carries the Via sent on)."""
    try:
        params = via.params
    except SipParseError:
        return None
    if (not force_rport and "rport" not in params and "received" not in params
            and via.host == src_ip):
        return None  # the usual Via: nothing to write
    return reply_via(via.raw, via.host, src_ip, src_port, force_rport)


#: (the function above is the pure form)
build_reply_py = build_reply
if reply_builder is not None:
    # Compiled (_fast.c): the usual reply (nothing added, no body) in one C call, the status
    # line kept per code; anything else by build_reply_py. tm's 100 and every sl reply.
    build_reply = reply_builder(build_reply_py)


#: the last lines of a reply without a body ("\n".join adds the LFs)
_EMPTY_BODY_END = ("Content-Length: 0\r", "\r", "")
#: (status, reason) -> the status line; a server answers with a handful of them (bounded)
_STATUS_LINES: dict[tuple[int, str], str] = {}


def _status_line(status: int, reason: str) -> str:
    """``SIP/2.0 200 OK\\r`` for a valid code and reason (ValueError otherwise), kept per
    (status, reason): every reply has one, and checking and formatting it is most of its cost."""
    line = _STATUS_LINES.get((status, reason))
    if line is None:
        if not 100 <= status <= 699:
            raise ValueError(f"bad status code {status}")
        line = f"SIP/2.0 {status} {_clean(reason, 'reason')}\r"
        if len(_STATUS_LINES) < 256:
            _STATUS_LINES[(status, reason)] = line
    return line


def lines_crc32_py(keys: list[str], lines: list[str]) -> int | None:
    """CRC-32 of the first Call-ID, From, CSeq and Via lines joined by ``|`` (UTF-8 with
    surrogateescape: header text keeps any byte the message had), None when one is missing.
    kemi_core/sip/_fast.c has the compiled form (lines_crc32), used when built."""
    try:
        key = (f"{lines[keys.index('call-id')]}|{lines[keys.index('from')]}|"
               f"{lines[keys.index('cseq')]}|{lines[keys.index('via')]}")
    except ValueError:
        return None
    return zlib.crc32(key.encode("utf-8", "surrogateescape"))


try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import lines_crc32
except ImportError:  # not built: same result, slower
    lines_crc32 = lines_crc32_py


def request_crc32(req: SipMsg) -> int:
    """A checksum of the request's Call-ID, From, CSeq and first Via lines as received: the same
    for every retransmission of a request (they repeat it byte for byte), different for another
    request (its From tag, CSeq or branch differ); what a stateless reply's To-tag is made of.
    The raw lines, because unfolding and stripping their values would only cost here."""
    crc = lines_crc32(req._names, req._lines)
    if crc is None:  # a header missing: a request the script answers anyway
        header = req.header
        key = f"{header('call-id')}|{header('from')}|{header('cseq')}|{header('via')}"
        crc = zlib.crc32(key.encode("utf-8", "surrogateescape"))
    return crc  # type: ignore[no-any-return]


__all__ = ["build_reply", "reply_top_via", "request_crc32", "stateless_sender", "usual_reply",
           "SipParseError"]


#: usual_reply(ctx, code, reason, tag_prefix, added) -> (data, proto, host, port, local) of
#: the usual stateless reply to ctx's request (sl's), or None: then the caller's Python decides
#: (kemi_core/sip/_fast.c, stateless_replier). None when not built.
UsualReply = Callable[[Any, int, str, str, Sequence[tuple[str, str]]],
                      "tuple[bytes, str, str, int, tuple[str, int]] | None"]
usual_reply: UsualReply | None
try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import stateless_replier
except ImportError:  # not built: sl builds and addresses the reply in Python
    usual_reply = None
else:
    usual_reply = stateless_replier(build_reply_py)

Sender = Callable[..., int]
_stateless_sender: Callable[[tuple[Any, ...]], Sender] | None = None
if usual_reply is not None:  # (built, and not KEMI_SIP_PURE)
    from kemi_core.sip._fast import stateless_sender as _compiled_sender

    _stateless_sender = _compiled_sender


def stateless_sender(pure: Sender, tm_pure: Sender | None, state: Any, core_type: type) -> Sender:
    """sl's sl_send_reply (``tm_pure`` None) or send_reply, compiled for the usual reply (the
    tm check, usual_reply, Core.send_reply_to and the counters in one call; ``state``: sl's
    module state, ``core_type``: the Core class whose send_reply_to it does); any other shape
    is handed to ``pure`` (``tm_pure`` when tm may be bound). Not built: the Python form."""
    if _stateless_sender is None:
        return tm_pure if tm_pure is not None else pure
    return _stateless_sender((pure, tm_pure, state, build_reply_py, core_type))
