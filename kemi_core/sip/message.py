"""SipMsg: one SIP message as received, with lazy header access and in-place edits.

The head is kept as a list of text lines (the first line, then one item per header, folded
continuation lines included, each line still ending in its CR) and a parallel list of
canonical lower-case header names. Values are parsed only when asked for and cached until an
edit touches that header. Edits replace, insert or delete whole lines (edits.py), so
serializing is one ``"\\n".join``; an unedited message returns the very bytes it came from.

Text is UTF-8 decoded with surrogateescape: any byte survives the round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kemi_core.sip.edits import EditsMixin
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_vias,
)
from kemi_core.sip.syntax import (
    FOLD_RE,
    LIST_HEADERS,
    header_key,
    line_value,
    parse_uint,
    split_commas,
)
from kemi_core.sip.uri import SipUri, parse_uri

_MISSING: Any = object()

__all__ = ["SipMsg", "header_key", "line_value"]


class SipMsg(EditsMixin):
    """A parsed SIP request or reply. Build it with ``parse_datagram`` or ``StreamBuffer``."""

    __slots__ = (
        "is_request", "_method", "_ruri", "status", "reason", "version",
        "_lines", "_names", "_body", "_buf", "_cache",
    )  # fmt: skip

    def __init__(self, lines: list[str], names: list[str], body: bytes = b"") -> None:
        self._lines = lines
        self._names = names
        self._body = body
        self._buf: bytes | None = None  # the bytes parsed from, until the first edit
        self._cache: dict[str, Any] = {}
        self.is_request = True
        self._method = ""
        self._ruri = ""
        self.status = 0
        self.reason = ""
        self.version = "SIP/2.0"

    def __repr__(self) -> str:
        if self.is_request:
            return f"<SipMsg {self._method} {self._ruri}>"
        return f"<SipMsg {self.status} {self.reason}>"

    # ---- first line -------------------------------------------------------------------
    @property
    def method(self) -> str:
        """Request method; for a reply, the CSeq method."""
        return self._method if self.is_request else self.cseq.method

    @property
    def ruri(self) -> str:
        return self._ruri

    @ruri.setter
    def ruri(self, uri: str) -> None:
        self.set_ruri(uri)

    @property
    def first_line(self) -> str:
        return self._lines[0].rstrip("\r")

    # ---- raw header access ------------------------------------------------------------
    def _first(self, key: str) -> str | None:
        names = self._names
        if key not in names:
            return None
        return line_value(self._lines[names.index(key)])

    def _indexes(self, key: str) -> list[int]:
        return [i for i, n in enumerate(self._names) if n == key]

    def header(self, name: str) -> str | None:
        """First header of that name: its raw value (unfolded, stripped), None if absent."""
        return self._first(header_key(name))

    def headers(self, name: str) -> list[str]:
        """Every value of that name; comma-split for headers whose grammar is a list."""
        key = header_key(name)
        lines = self._lines
        values = [line_value(lines[i]) for i in self._indexes(key)]
        if key in LIST_HEADERS:
            return [v for value in values for v in split_commas(value)]
        return values

    def has_header(self, name: str) -> bool:
        return header_key(name) in self._names

    def header_count(self, name: str) -> int:
        """Number of header lines of that name."""
        return self._names.count(header_key(name))

    def iter_headers(self) -> Iterator[tuple[str, str]]:
        """(name as written, raw value) of every header line in order, edits included."""
        for line in self._lines[1:]:
            yield line[: line.find(":")].rstrip(" \t"), line_value(line)

    # ---- typed values (parsed on first access, cached until an edit) -------------------
    def _hot(self, key: str) -> str:
        """Value of the first ``key`` line for the typed properties (it must exist)."""
        try:
            line = self._lines[self._names.index(key)]
        except ValueError:
            raise SipParseError(400, f"Missing {key} header") from None
        v = line.partition(":")[2]
        if "\n" in v:
            v = FOLD_RE.sub(" ", v)
        return v.strip()

    @property
    def uri(self) -> SipUri:
        u = self._cache.get("uri")
        if u is None:
            if not self.is_request:
                raise SipParseError(400, "A reply has no Request-URI")
            u = self._cache["uri"] = parse_uri(self._ruri)
        return u

    @property
    def via(self) -> Via:
        v = self._cache.get("via")
        if v is None:
            text = self._hot("via")
            v = parse_via(text) if "," not in text else parse_vias(text)[0]
            self._cache["via"] = v
        return v

    @property
    def vias(self) -> list[Via]:
        v = self._cache.get("vias")
        if v is None:
            lines = self._lines
            v = [via for i in self._indexes("via") for via in parse_vias(line_value(lines[i]))]
            self._cache["vias"] = v
        return v

    @property
    def from_(self) -> NameAddr:
        v = self._cache.get("from")
        if v is None:
            v = self._cache["from"] = parse_name_addr(self._hot("from"))
        return v

    @property
    def to(self) -> NameAddr:
        v = self._cache.get("to")
        if v is None:
            v = self._cache["to"] = parse_name_addr(self._hot("to"))
        return v

    def _addr_list(self, key: str, allow_star: bool = False) -> list[NameAddr]:
        v = self._cache.get(key)
        if v is None:
            lines = self._lines
            v = [
                na
                for i in self._indexes(key)
                for na in parse_name_addr_list(line_value(lines[i]), allow_star)
            ]
            if allow_star and len(v) > 1 and any(na.is_star for na in v):
                raise SipParseError(400, "'*' Contact mixed with others")
            self._cache[key] = v
        return v

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; ``*`` is a NameAddr with ``is_star`` (alone, RFC 3261 10.2.2)."""
        return self._addr_list("contact", allow_star=True)

    @property
    def routes(self) -> list[NameAddr]:
        return self._addr_list("route")

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._addr_list("record-route")

    @property
    def cseq(self) -> CSeq:
        v = self._cache.get("cseq")
        if v is None:
            v = self._cache["cseq"] = parse_cseq(self._hot("cseq"))
        return v

    @property
    def call_id(self) -> str:
        v = self._cache.get("call-id")
        if v is None:
            v = self._hot("call-id")
            if not v or " " in v or "\t" in v:
                raise SipParseError(400, "Bad Call-ID")
            self._cache["call-id"] = v
        return v

    @property
    def max_forwards(self) -> int | None:
        v = self._cache.get("max-forwards", _MISSING)
        if v is _MISSING:
            text = self._first("max-forwards")
            v = None if text is None else parse_uint(text, "Max-Forwards", 255)
            self._cache["max-forwards"] = v
        return v  # type: ignore[no-any-return]

    @property
    def content_length(self) -> int | None:
        v = self._cache.get("content-length", _MISSING)
        if v is _MISSING:
            text = self._first("content-length")
            v = None if text is None else parse_uint(text, "Content-Length")
            self._cache["content-length"] = v
        return v  # type: ignore[no-any-return]

    @property
    def expires(self) -> int | None:
        v = self._cache.get("expires", _MISSING)
        if v is _MISSING:
            text = self._first("expires")
            # RFC 3261 20.19: delta-seconds; larger values are taken as 2**32-1.
            v = None if text is None else min(parse_uint(text, "Expires"), 2**32 - 1)
            self._cache["expires"] = v
        return v  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str | None:
        return self._first("content-type")

    @property
    def body(self) -> bytes:
        return self._body

    # ---- output --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        b = self._buf
        if b is not None:
            return b
        return b"".join(
            ("\n".join(self._lines).encode("utf-8", "surrogateescape"), b"\n\r\n", self._body)
        )

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def copy(self) -> SipMsg:
        """An independent copy (edits to one do not show in the other)."""
        m = SipMsg(list(self._lines), list(self._names), self._body)
        m._buf = self._buf
        m.is_request = self.is_request
        m._method = self._method
        m._ruri = self._ruri
        m.status = self.status
        m.reason = self.reason
        m.version = self.version
        return m
