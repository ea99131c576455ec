"""The typed header values: CSeq, Via, NameAddr (what msg.cseq, msg.via, msg.from_ ... return).

They are plain attrs classes (a caller could change one in place), so SipMsg.copy() does not
share them with the copy; it carries only the immutable cached values (str, int, None).
"""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.syntax import bad, format_params, params_trusted
from kemi_core.sip.uri import SipUri, parse_uri

_UNSET: Any = object()


def port_value(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 65535:
        raise bad("Bad port")
    return int(text)


@attrs.define(slots=True, eq=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


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

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Via({self.raw!r})"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


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
