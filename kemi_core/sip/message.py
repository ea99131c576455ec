"""SipMsg: one SIP message as received, with lazy header access and in-place edits.

The head is kept as a list of text lines (the first line, then one item per header, folded
continuation lines included, each line still ending in its CR) and a parallel list of
canonical lower-case header names. Values are parsed only when asked for and cached until an
edit touches that header. Edits replace, insert or delete whole lines (edits.py), so
serializing is one ``"\\n".join``; an unedited message returns the very bytes it came from.

Text is UTF-8 decoded with surrogateescape: any byte survives the round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Set
from itertools import compress
from typing import Any

from kemi_core.sip.edits import EditsMixin, message_bytes
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import (
    parse_cseq,
    parse_name_addr,
    parse_name_addr_list,
    parse_via,
    parse_vias,
)
from kemi_core.sip.syntax import (
    LIST_HEADERS,
    METHODS,
    cached_value,
    field_value,
    header_key,
    line_value,
    message_type,
    parse_token_list,
    parse_uint,
    single_index,
    single_value,
    split_commas,
)
from kemi_core.sip.uri import SipUri, parse_uri, parse_uri_shared
from kemi_core.sip.values import CSeq, NameAddr, Via

_MISSING: Any = object()
_new_msg = object.__new__
_BYTE_VALUES = {str(i): i for i in range(256)}
# Whole Max-Forwards lines seen ("Max-Forwards: 70\r") -> value; bounded, filled by valid lines.
_MF_LINES: dict[str, int] = {}
#: the cache's keys whose values are lists (copy() copies them; the other values are immutable)
_LIST_KEYS = frozenset(("vias", "contact", "route", "record-route", "require", "proxy-require",
                        "supported"))

__all__ = ["SipMsg", "header_key", "line_value"]


def _name_addr_property(key: str) -> property:
    """msg.from_ / msg.to: the name-addr of a single-valued header, parsed on first access.
    (One function per header rather than a shared helper: a Python call is a good part of
    the cost of reading one of them, and every request reads both.)"""

    def read(self: SipMsg) -> NameAddr:
        c = self._cache
        v = c.get(key)
        if v is None:
            text = single_value(self._names, self._lines, key)
            if text is None:
                self._single(key)  # raises the 400 for a missing or repeated header
            v = c[key] = parse_name_addr(text)  # type: ignore[arg-type]
        return v  # type: ignore[no-any-return]

    return property(read, doc=f"The {key.capitalize()} header's name-addr (a 400 when missing).")


class SipMsg(EditsMixin):
    """A parsed SIP request or reply. Build it with ``parse_datagram`` or ``StreamBuffer``."""

    __slots__ = ()  # the state's slots are declared by EditsMixin

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
        names = self._names
        count = names.count(key)  # C-level scans for the usual none or one
        if count <= 1:
            return [names.index(key)] if count else []
        return [i for i, n in enumerate(names) if n == key]

    def header(self, name: str) -> str | None:
        """First header of that name: its raw value (unfolded, stripped), None if absent."""
        return self._first(header_key(name))

    def headers(self, name: str) -> list[str]:
        """Every value of that name; comma-split for headers whose grammar is a list (raw
        access never fails: an unbalanced quote just ends the splitting)."""
        key = header_key(name)
        lines = self._lines
        values = [line_value(lines[i]) for i in self._indexes(key)]
        if key in LIST_HEADERS:
            return [v for value in values for v in split_commas(value, strict=False)]
        return values

    def has_header(self, name: str) -> bool:
        return header_key(name) in self._names

    def header_count(self, name: str) -> int:
        """Number of header lines of that name."""
        return self._names.count(header_key(name))

    @property
    def header_keys(self) -> list[str]:
        """The canonical key (``header_key``) of each line, parallel to the lines: index 0 is
        the start line (""), then one per header in order, edits included. Read only."""
        return self._names

    def value_at(self, index: int) -> str:
        """The raw value (unfolded, stripped) of the header line at ``index`` of
        ``header_keys``."""
        return line_value(self._lines[index])

    def lines_of(self, keys: Set[str]) -> tuple[str, ...]:
        """The raw header lines (as stored: a received one keeps its CR; edits included) whose
        ``header_key`` is in ``keys``, in order: what those headers say, byte for byte, in one
        C-level pass."""
        return tuple(compress(self._lines, map(keys.__contains__, self._names)))

    def iter_headers(self) -> Iterator[tuple[str, str]]:
        """(name as written, raw value) of every header line in order, edits included."""
        for line in self._lines[1:]:
            yield line[: line.find(":")].rstrip(" \t"), line_value(line)

    # ---- typed values (parsed on first access, cached until an edit) -------------------
    def _single(self, key: str, required: bool = True) -> str | None:
        """Value of a single-valued header (RFC 4475 3.3.8: repeating it is a 400); a missing
        one is a 400 when ``required``, else None."""
        v = single_value(self._names, self._lines, key)
        if v is None:
            if single_index(self._names, key) == -2:
                raise SipParseError(400, f"Multiple {key} headers")
            if required:
                raise SipParseError(400, f"Missing {key} header")
        return v

    @property
    def uri(self) -> SipUri:
        u = self._cache.get("uri")
        if u is None:
            u = self._cache["uri"] = self._request_uri(parse_uri)
        return u

    @property
    def uri_shared(self) -> SipUri:
        """``uri`` for a reader that changes nothing (rr's checks of every in-dialog request):
        the parsed form ``uri`` keeps when there is one, else the one parse_uri_shared keeps
        for this text, without the copy ``uri`` makes; the same errors. Never change it."""
        u = self._cache.get("uri")
        if u is None:
            u = self._request_uri(parse_uri_shared)
        return u  # type: ignore[no-any-return]

    def _request_uri(self, parse: Callable[[str], SipUri]) -> SipUri:
        """The Request-URI parsed by ``parse``, or the 400 that refuses it."""
        if not self.is_request:
            raise SipParseError(400, "A reply has no Request-URI")
        u = parse(self._ruri)
        if u.headers:
            # RFC 4475 3.1.2.11: escaped headers in a Request-URI; rejecting is allowed.
            raise SipParseError(400, "Headers in Request-URI")
        return u

    @property
    def via(self) -> Via:
        c = self._cache
        v = c.get("via")  # (the vias property and pop_via keep it equal to vias[0])
        if v is None:
            try:
                text = line_value(self._lines[self._names.index("via")])
            except ValueError:
                raise SipParseError(400, "Missing via header") from None
            v = parse_via(text) if "," not in text else parse_vias(text)[0]
            self._cache["via"] = v
        return v

    @property
    def vias(self) -> list[Via]:
        c = self._cache
        v = c.get("vias")
        if v is None:
            lines = self._lines
            top = c.get("via")  # the first value of the first line, when already parsed
            v = []
            for i in self._indexes("via"):
                text = line_value(lines[i])
                if top is not None and "," not in text:
                    v.append(top)
                else:
                    v.extend(parse_vias(text))
                top = None
            c["vias"] = v
            if v:
                c["via"] = v[0]
        return v

    from_ = _name_addr_property("from")
    to = _name_addr_property("to")

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
            text = single_value(self._names, self._lines, "cseq")
            v = parse_cseq(self._single("cseq") if text is None else text)  # type: ignore[arg-type]
            if self.is_request and v.method != self._method:
                # RFC 4475 3.1.2.17/18: 400, or 501 when the method is unknown as well.
                status = 400 if self._method in METHODS else 501
                raise SipParseError(status, "CSeq method does not match the request")
            self._cache["cseq"] = v
        return v

    @property
    def call_id(self) -> str:
        v = self._cache.get("call-id")
        if v is None:
            v = single_value(self._names, self._lines, "call-id")
            if v is None:
                v = self._single("call-id")  # raises the 400 for a missing or repeated one
            if not v or " " in v or "\t" in v:
                raise SipParseError(400, "Bad Call-ID")
            self._cache["call-id"] = v
        return v

    @property
    def max_forwards(self) -> int | None:
        v = self._cache.get("max-forwards", _MISSING)
        if v is _MISSING:
            i = single_index(self._names, "max-forwards")
            if i == -1:
                v = None
            else:
                # The usual single "Max-Forwards: 70" line: one dict hit for the whole line.
                v = _MF_LINES.get(self._lines[i]) if i >= 0 else None
                if v is None:
                    text = self._single("max-forwards")  # raises when repeated
                    v = _BYTE_VALUES.get(text)  # type: ignore[arg-type]
                    if v is None:
                        v = parse_uint(text, "Max-Forwards", 255)  # type: ignore[arg-type]
                    if len(_MF_LINES) < 1024:
                        _MF_LINES[self._lines[i]] = v
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
            text = self._single("expires", False)
            # RFC 3261 20.19: 0..2**32-1 (RFC 4475 3.1.2.4: a registrar may fall back to its
            # default expiry when it catches this error).
            v = None if text is None else parse_uint(text, "Expires", 2**32 - 1)
            self._cache["expires"] = v
        return v  # type: ignore[no-any-return]

    @property
    def content_type(self) -> str | None:
        return self._single("content-type", False)

    def _tokens(self, key: str) -> list[str]:
        v = self._cache.get(key)
        if v is None:
            lines = self._lines
            v = [t for i in self._indexes(key) for t in parse_token_list(line_value(lines[i]))]
            self._cache[key] = v
        return v

    @property
    def require(self) -> list[str]:
        """Option tags of every Require header."""
        return self._tokens("require")

    @property
    def proxy_require(self) -> list[str]:
        return self._tokens("proxy-require")

    @property
    def supported(self) -> list[str]:
        return self._tokens("supported")

    @property
    def body(self) -> bytes:
        return self._body

    # ---- output --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        b = self._buf
        if b is not None:
            return b
        return message_bytes(self._lines, self._body)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def copy(self) -> SipMsg:
        """An independent copy (edits to one do not show in the other) that re-parses nothing:
        the parsed values come along, shared (Via, From, To, CSeq ... are immutable; lists of
        them are copied). Only the Request-URI's parsed form (a mutable SipUri) is left to be
        parsed again when asked for. Each edit forgets only what it changes."""
        m = _new_msg(SipMsg)  # every slot is set below: no __init__ defaults to overwrite
        m._lines = self._lines.copy()
        m._names = self._names.copy()
        m._body = self._body
        m._cache = d = self._cache.copy()
        if d:
            d.pop("uri", None)
            for k in _LIST_KEYS.intersection(d):  # (usually none: a step per list, not per key)
                d[k] = d[k].copy()
        m._buf = self._buf
        m.is_request = self.is_request
        m._method = self._method
        m._ruri = self._ruri
        m.status = self.status
        m.reason = self.reason
        m.version = self.version
        return m


#: The properties read on every message that keep what they parse in msg._cache (name ->
#: cache key; None: the method, a request's own). They are the pure forms: when built, each is
#: wrapped in a compiled descriptor (_fast.c cached_value) that returns a cached value without
#: the Python call the property costs, and calls the property's getter for anything else.
CACHED_PROPERTIES = {"via": "via", "vias": "vias", "cseq": "cseq", "from_": "from", "to": "to",
                     "call_id": "call-id", "max_forwards": "max-forwards", "uri": "uri",
                     "method": None}
#: The properties that read a state slot (name -> slot; "_lines": the first line without its
#: CR), read several times per message (the request gate, tm, scripts): compiled the same way.
FIELD_PROPERTIES = {"ruri": "_ruri", "header_keys": "_names", "first_line": "_lines"}
properties_py: dict[str, property] = {name: SipMsg.__dict__[name]
                                      for name in (*CACHED_PROPERTIES, *FIELD_PROPERTIES)}
if cached_value is not None:
    for _name, _key in CACHED_PROPERTIES.items():
        setattr(SipMsg, _name, cached_value(_key, properties_py[_name].fget))
if field_value is not None:
    for _name, _slot in FIELD_PROPERTIES.items():
        _prop = properties_py[_name]
        setattr(SipMsg, _name, field_value(_slot, _prop.fget, _prop.fset))

#: SipMsg's methods as written (here and in EditsMixin) that have a compiled form in _fast.c,
#: which takes their place when built: tm copies every relayed request twice and prepends its
#: Via on each branch, every relayed request has its Max-Forwards set, every relayed reply
#: loses our Via, the request gate reads values by index. The compiled edits do the usual layout and call these for anything else.
methods_py = {name: getattr(SipMsg, name) for name in (
    "copy", "set_max_forwards", "prepend_via", "bytes_without_top_via", "value_at",
    "bytes_with_via", "replace_top_via")}
copy_py = methods_py["copy"]
if message_type is not None:
    # (message_type also registers the class for the parser's compiled pass, scan_message)
    for _name, _method in message_type(SipMsg, _LIST_KEYS, methods_py).items():
        setattr(SipMsg, _name, _method)
