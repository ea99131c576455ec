"""SipMsg: one SIP message as received, with lazy header access and in-place edits.

The head is kept as a list of text lines (the first line, then one item per header, folded
continuation lines included, each line still ending in its CR) and a parallel list of
canonical lower-case header names. Values are parsed only when asked for and cached until the
next edit. Edits replace, insert or delete whole lines, so serializing is one ``"\\n".join``;
an unedited message returns the very bytes it was parsed from.

Text is UTF-8 decoded with surrogateescape: any byte survives the round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    TOKEN_CHARS,
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_uint,
    parse_via,
    parse_vias,
    split_commas,
)
from kemi_core.sip.uri import SipUri, parse_uri

_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]*")
_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """Canonical lookup key of a header name: lower-case, compact form expanded."""
    key = _KEYS.get(name)
    if key is None:
        key = name.strip().lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEYS) < 1024:
            _KEYS[name] = key
    return key


def line_value(line: str) -> str:
    """The value of a header line: after the colon, unfolded, without surrounding LWS."""
    v = line[line.find(":") + 1 :]
    if "\n" in v:
        v = _FOLD_RE.sub(" ", v)
    return v.strip(" \t\r")


def _clean(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"CR/LF not allowed in {what}")
    return text


class SipMsg:
    """A parsed SIP request or reply. Build it with ``parse_datagram`` or ``StreamBuffer``."""

    __slots__ = (
        "is_request", "_method", "_ruri", "status", "reason", "version",
        "_lines", "_names", "_body", "_buf", "_dirty", "_cache",
    )  # fmt: skip

    def __init__(self, lines: list[str], names: list[str], body: bytes = b"") -> None:
        self._lines = lines
        self._names = names
        self._body = body
        self._buf: bytes | None = None
        self._dirty = True
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
        return self._lines[0][:-1]

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
    @property
    def uri(self) -> SipUri:
        u = self._cache.get("uri")
        if u is None:
            if not self.is_request:
                raise SipParseError(400, "A reply has no Request-URI")
            u = self._cache["uri"] = parse_uri(self._ruri)
        return u

    def _hot(self, key: str) -> str:
        """Value of the first ``key`` line for the hot typed properties (must exist)."""
        names = self._names
        if key not in names:
            raise SipParseError(400, f"Missing {key} header")
        line = self._lines[names.index(key)]
        v = line[line.find(":") + 1 :]
        if "\n" in v:
            v = _FOLD_RE.sub(" ", v)
        return v.strip(" \t\r")

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

    def _uint(self, key: str, what: str, limit: int | None) -> int | None:
        c = self._cache
        if key not in c:
            text = self._first(key)
            c[key] = None if text is None else parse_uint(text, what, limit)
        return c[key]  # type: ignore[no-any-return]

    @property
    def max_forwards(self) -> int | None:
        return self._uint("max-forwards", "Max-Forwards", 255)

    @property
    def content_length(self) -> int | None:
        return self._uint("content-length", "Content-Length", None)

    @property
    def expires(self) -> int | None:
        c = self._cache
        if "expires" not in c:
            text = self._first("expires")
            # RFC 3261 20.19: delta-seconds; larger values are taken as 2**32-1.
            c["expires"] = None if text is None else min(parse_uint(text, "Expires"), 2**32 - 1)
        return c["expires"]  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str | None:
        return self._first("content-type")

    @property
    def body(self) -> bytes:
        return self._body

    # ---- edits --------------------------------------------------------------------------
    def set_ruri(self, uri: str) -> None:
        if not self.is_request:
            raise ValueError("a reply has no Request-URI")
        uri = _clean(uri.strip(), "Request-URI")
        if not uri or " " in uri or "\t" in uri:
            raise ValueError(f"invalid Request-URI {uri!r}")
        self._lines[0] = f"{self._method} {uri} {self.version}\r"
        self._ruri = uri
        self._dirty = True
        self._cache.clear()

    def _new_line(self, name: str, value: str) -> tuple[str, str]:
        if not name or not TOKEN_CHARS.issuperset(name):
            raise ValueError(f"invalid header name {name!r}")
        return header_key(name), f"{name}: {_clean(value, 'a header value')}\r"

    def _insert(self, i: int, key: str, line: str) -> None:
        self._names.insert(i, key)
        self._lines.insert(i, line)
        self._dirty = True
        self._cache.clear()

    def append_header(self, name: str, value: str) -> None:
        """Add a header after the last one."""
        key, line = self._new_line(name, value)
        self._insert(len(self._names), key, line)

    def insert_header(self, name: str, value: str) -> None:
        """Add a header before the first one."""
        key, line = self._new_line(name, value)
        self._insert(1, key, line)

    def add_header_after(self, anchor: str, name: str, value: str) -> bool:
        """Add a header after the first ``anchor`` header; False when there is none."""
        akey = header_key(anchor)
        if akey not in self._names:
            return False
        key, line = self._new_line(name, value)
        self._insert(self._names.index(akey) + 1, key, line)
        return True

    def add_header_before(self, anchor: str, name: str, value: str) -> bool:
        """Add a header before the first ``anchor`` header; False when there is none."""
        akey = header_key(anchor)
        if akey not in self._names:
            return False
        key, line = self._new_line(name, value)
        self._insert(self._names.index(akey), key, line)
        return True

    def remove_header(self, name: str) -> int:
        """Remove every line of that name; returns how many."""
        idx = self._indexes(header_key(name))
        for i in reversed(idx):
            del self._names[i]
            del self._lines[i]
        if idx:
            self._dirty = True
            self._cache.clear()
        return len(idx)

    def prepend_via(self, value: str) -> None:
        """Add a Via line above the top-most one."""
        names = self._names
        i = names.index("via") if "via" in names else 1
        names.insert(i, "via")
        self._lines.insert(i, f"Via: {_clean(value, 'a Via')}\r")
        self._dirty = True
        self._cache.clear()

    def pop_via(self) -> Via | None:
        """Remove the top Via value (only that one of a comma list); None when there is none."""
        names = self._names
        if "via" not in names:
            return None
        i = names.index("via")
        line = self._lines[i]
        values = split_commas(line_value(line))
        top = parse_via(values[0]) if values else None
        if len(values) <= 1:
            del names[i]
            del self._lines[i]
        else:
            self._lines[i] = f"{line[: line.find(':')]}: {', '.join(values[1:])}\r"
        self._dirty = True
        self._cache.clear()
        return top

    def _set_value(self, key: str, name: str, value: str) -> None:
        """Replace the value of the first ``key`` line (keeping its name as written) or
        append the header."""
        names = self._names
        if key in names:
            i = names.index(key)
            line = self._lines[i]
            self._lines[i] = f"{line[: line.find(':')]}: {value}\r"
            self._dirty = True
            self._cache.clear()
        else:
            self.append_header(name, value)

    def set_max_forwards(self, n: int) -> None:
        """Set Max-Forwards (0..255), adding the header when missing."""
        if not 0 <= n <= 255:
            raise ValueError("Max-Forwards must be 0..255")
        self._set_value("max-forwards", "Max-Forwards", str(n))

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body; Content-Length follows, Content-Type is set when given (and
        removed when the new body is empty and no type is given)."""
        self._body = bytes(body)
        self._set_value("content-length", "Content-Length", str(len(body)))
        if content_type is not None:
            self._set_value("content-type", "Content-Type", _clean(content_type, "Content-Type"))
        elif not body:
            self.remove_header("content-type")
        self._dirty = True

    # ---- output --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        if not self._dirty:
            return self._buf  # type: ignore[return-value]
        head = "\n".join(self._lines).encode("utf-8", "surrogateescape")
        return b"%s\n\r\n%s" % (head, self._body)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def copy(self) -> SipMsg:
        """An independent copy (edits to one do not show in the other)."""
        m = SipMsg(list(self._lines), list(self._names), self._body)
        m._buf = self._buf
        m._dirty = self._dirty
        m.is_request = self.is_request
        m._method = self._method
        m._ruri = self._ruri
        m.status = self.status
        m.reason = self.reason
        m.version = self.version
        return m
