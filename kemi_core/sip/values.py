"""The typed header values: CSeq, Via, NameAddr (what msg.cseq, msg.via, msg.from_ ... return).

They are named tuples: immutable, so a copy of a message shares them, and cheap to build
(the parsers' fast paths make one with a single ``tuple.__new__``; a Python-level ``__init__``
would cost as much as the regex match that found the fields). Via and NameAddr keep the raw
parameter text; the parameters are split from it on first access and cached in the instance
dict (derived data, not state) as a read-only mapping, so no holder of a shared value can
change it under the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.syntax import PURE_PYTHON, bad, format_params, instance_value, params_trusted
from kemi_core.sip.uri import _SHARED, SipUri, parse_uri_shared

try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import memo_value
except ImportError:  # not built (or an older build): NameAddr.uri stays the property
    memo_value = None

_UNSET: Any = object()
_NO_PARAMS: Mapping[str, str | None] = MappingProxyType({})
_tuple_new = tuple.__new__


def port_value(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise bad("Bad port")
    return int(text)


class CSeq(NamedTuple):
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


class _HeaderValue:
    """What Via and NameAddr share (placed before their tuple base, so that its __ne__ wins over
    tuple's): parameters split from ``ptext`` once and cached in the instance dict, inequality
    from their own __eq__, repr by the raw text. (Their own __eq__ also makes them unhashable:
    equality is not the tuple's.)"""

    ptext: str
    raw: str

    @property
    def params(self) -> Mapping[str, str | None]:
        """The parameters (names lower-cased), read-only."""
        d = self.__dict__
        p = d.get("_params")
        if p is None:
            p = d["_params"] = (MappingProxyType(params_trusted(self.ptext, {})) if self.ptext
                                else _NO_PARAMS)
        return p  # type: ignore[no-any-return]

    #: (the property above is the pure form; see the end of this class)
    params_py = params

    if instance_value is not None:
        # Compiled (_fast.c): the split parameters returned without the property's Python call
        # once cached (for a request's top Via the parser splits them ahead), else params_py.
        params = instance_value("_params", params.fget)  # type: ignore[assignment, attr-defined]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.raw!r})"


class _ViaFields(NamedTuple):
    protocol: str
    transport: str
    host: str
    port: int | None
    raw: str
    #: the branch parameter (the first one, like every parameter lookup)
    branch: str | None
    #: the parameter text as received (";branch=z9hG4bK1;rport"), validated by the parser
    ptext: str


class Via(_HeaderValue, _ViaFields):
    """One via-parm. ``rport`` is True when the flag is present without a value.

    Build it with parse_via; ``Via(protocol, transport, host, port, raw, params=...)`` also works.
    """

    # No __slots__: the instance dict caches the parameter dict.

    def __new__(
        cls,
        protocol: str,
        transport: str,
        host: str,
        port: int | None,
        raw: str,
        branch: str | None = None,
        ptext: str = "",
        params: dict[str, str | None] | None = None,
    ) -> Via:
        if params is None:
            return _tuple_new(cls, (protocol, transport, host, port, raw, branch, ptext))
        v = _tuple_new(cls, (protocol, transport, host, port, raw, params.get("branch"), ""))
        v.__dict__["_params"] = MappingProxyType(params)
        return v  # type: ignore[no-any-return]

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        params = self.params
        if "rport" not in params:
            return None
        rv = params["rport"]
        return True if rv is None else port_value(rv)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (self.protocol, self.transport, self.host.lower(), self.port, self.params) == (
            other.protocol, other.transport, other.host.lower(), other.port, other.params,
        )  # fmt: skip

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


class _NameAddrFields(NamedTuple):
    display: str | None
    uri_text: str
    is_star: bool
    raw: str
    #: the tag parameter (the first one, like every parameter lookup)
    tag: str | None
    #: the parameter text as received (";tag=1928301774;x=y"), validated by the parser
    ptext: str


class NameAddr(_HeaderValue, _NameAddrFields):
    """A name-addr or addr-spec with header params (From, To, Contact, Route, ...).

    ``uri`` is parsed on first access (a SipUri shared with every value of the same URI text:
    read it, never change it); it is None for a scheme other than sip/sips/tel (and for the
    ``*`` Contact). ``display`` is the display name without quotes and escapes.
    """

    # No __slots__: the instance dict caches the parameter dict and the parsed URI.

    def __new__(
        cls,
        display: str | None,
        uri_text: str,
        is_star: bool,
        raw: str,
        tag: str | None = None,
        ptext: str = "",
        params: dict[str, str | None] | None = None,
    ) -> NameAddr:
        if params is None:
            return _tuple_new(cls, (display, uri_text, is_star, raw, tag, ptext))
        na = _tuple_new(cls, (display, uri_text, is_star, raw, params.get("tag"), ""))
        na.__dict__["_params"] = MappingProxyType(params)
        return na  # type: ignore[no-any-return]

    @property
    def uri(self) -> SipUri | None:
        d = self.__dict__
        u = d.get("_uri", _UNSET)
        if u is _UNSET:
            if self.is_star:
                u = None
            else:
                # parse_uri_shared's memo read here first: a call less for a known URI (every
                # message's From and To, a dialog's Route)
                text = self.uri_text
                u = _SHARED.get(text)
                if u is None:
                    try:
                        u = parse_uri_shared(text)  # read only: shared
                    except SipParseError as exc:
                        if exc.status != 416:
                            raise
                        u = None
            d["_uri"] = u
        return u  # type: ignore[no-any-return]

    #: (the property above is the pure form)
    uri_py = uri

    if memo_value is not None:
        # Compiled (_fast.c): the URI returned without the property's Python call once parsed
        # (rr, registrar and the pseudo-variables read a From/To/Route/Contact URI several
        # times per request), and on the first read of a URI text the memo knows (each new
        # message's From, To, Route: ~8 per call), else uri_py.
        uri = memo_value("_uri", _SHARED, 1, uri.fget)  # type: ignore[assignment, attr-defined]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display, self.uri_text, self.is_star, self.params) == (
            other.display, other.uri_text, other.is_star, other.params,
        )  # fmt: skip

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        out = f"<{self.uri_text}>"
        if self.display is not None:
            esc = self.display.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{esc}" {out}'
        return out + format_params(self.params)
