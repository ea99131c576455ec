"""Text-level view of a message, for the textops functions that edit raw bytes.

Most edits go through the SipMsg edit API. Whole-text operations (``replace``, ``subst``,
``replace_hdrs``, index-based header removal ...) have no API equivalent, so they rewrite the
message text and re-parse it with ``parse_datagram``, swapping ``ctx.msg`` for the new object.
That is the rare path: it costs a parse, and any object that held the old ``SipMsg`` keeps
seeing the old one; the count of lines added at the top (insert_hf) is carried over. Content-Length is corrected to the new body length before parsing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import attrs

from kemi_core.api import MsgContext

log = logging.getLogger("kemi.textops")

ENC = "utf-8"
ERRS = "surrogateescape"  # lossless round trip of any byte

#: RFC 3261 compact header names (and the few later RFCs that added some).
COMPACT = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
    "r": "refer-to", "b": "referred-by", "o": "event", "u": "allow-events",
    "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "y": "identity", "n": "identity-info",
}

_HDR_END = re.compile(r"\r?\n\r?\n")
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_CLEN = re.compile(r"^(content-length|l)([ \t]*:[ \t]*)\d+", re.IGNORECASE | re.MULTILINE)


def canon(name: str) -> str:
    """Header name -> lower-case full name (compact forms expanded)."""
    low = name.strip().lower()
    return COMPACT.get(low, low)


@attrs.define
class RawMsg:
    """first line (with its CRLF) + header block (each line with its CRLF) + CRLF + body."""

    first: str
    head: str
    body: str

    @classmethod
    def of(cls, ctx: MsgContext) -> RawMsg:
        text = ctx.msg.to_bytes().decode(ENC, ERRS)
        nl = text.find("\n")
        first, rest = text[: nl + 1], text[nl + 1:]
        if rest.startswith(("\r\n", "\n")):  # no header at all
            return cls(first, "", rest.split("\n", 1)[1])
        m = _HDR_END.search(rest)
        if m is None:  # no empty line: all headers, no body
            return cls(first, rest, "")
        eol = 2 if m.group(0).startswith("\r") else 1  # keep the last header's line ending
        return cls(first, rest[: m.start() + eol], rest[m.end():])

    def lines(self) -> list[str]:
        """Header lines, each with folded continuation lines and its line ending."""
        out: list[str] = []
        for line in _LINE.findall(self.head):
            if line[:1] in (" ", "\t") and out:
                out[-1] += line
            else:
                out.append(line)
        return out

    def set_lines(self, lines: list[str]) -> None:
        self.head = "".join(lines)

    def text(self) -> str:
        return self.first + self.head + "\r\n" + self.body


def split_line(line: str) -> tuple[str, str]:
    """``"Name : value\\r\\n"`` -> (``"Name"``, raw value without the line ending)."""
    name, _, value = line.partition(":")
    return name.strip(), value.rstrip("\r\n").lstrip(" \t")


def iter_named(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """(index, canonical name, value) for each header line."""
    for i, line in enumerate(lines):
        name, value = split_line(line)
        yield i, canon(name), value


def commit(ctx: MsgContext, raw: RawMsg) -> bool:
    """Re-parse the edited text and make it the context's message (see module doc)."""
    from kemi_core.sip import SipParseError, parse_datagram

    blen = len(raw.body.encode(ENC, ERRS))
    raw.head = _CLEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{blen}", raw.head)
    try:
        new = parse_datagram(raw.text().encode(ENC, ERRS))
    except SipParseError as exc:
        log.error("textops: the edited message does not parse (%s); change dropped", exc)
        return False
    new.keep_front_of(ctx.msg)  # the lines added at the top stay counted (insert_hf's order)
    ctx.msg = new
    return True


def body_text(ctx: MsgContext) -> str:
    return ctx.msg.body.decode(ENC, ERRS)


def set_body_text(ctx: MsgContext, body: str, content_type: str | None = None) -> None:
    ctx.msg.set_body(body.encode(ENC, ERRS), content_type)
