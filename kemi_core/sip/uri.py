"""SIP, SIPS and tel URIs (RFC 3261 19.1, RFC 3966).

Field values are kept as written (escaped), the way Kamailio's ``$rU`` shows them; ``unescape``
turns a field into its plain text when comparing or displaying (RFC 3261 19.1.4 treats
``%75ser`` and ``user`` as equal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import attrs

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.syntax import PURE_PYTHON

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# Hostname or IPv4 (lenient: '_' seen in the wild), or an IPv6 reference in brackets.
_HOST_RE = re.compile(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]")
# Characters that can never appear unescaped in a URI: they break header framing.
_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f<>\"]")
# Characters that str() must escape when they appear in a user part.
_USER_OK = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/%"
)


def unescape(text: str) -> str:
    """Decode %XX escapes (invalid escapes are left as they are)."""
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def _bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


@attrs.define(slots=True, eq=True)
class SipUri:
    """A parsed sip:/sips:/tel: URI. ``params`` names are lower-cased, values as written."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = attrs.Factory(dict)
    headers: dict[str, str] = attrs.Factory(dict)

    @property
    def transport(self) -> str | None:
        """The ;transport= parameter, lower-cased (None when absent)."""
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_(self, **changes: Any) -> SipUri:
        """A copy with some fields replaced (``uri.with_(host="b.example", port=None)``)."""
        return attrs.evolve(self, **changes)

    def __str__(self) -> str:
        if self.scheme == "tel":
            out = [f"tel:{self.user or ''}"]
        else:
            out = [self.scheme, ":"]
            if self.user is not None:
                out.append(self.user)
                if self.password is not None:
                    out.append(":" + self.password)
                out.append("@")
            out.append(self.hostport)
        for k, v in self.params.items():
            out.append(f";{k}" if v is None else f";{k}={v}")
        if self.headers:
            out.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(out)


#: parse_uri_shared's memo: URI text -> its parsed form. Bounded (emptied when full): a
#: server sees the same few From/To/Route/Contact URIs again and again.
_SHARED: dict[str, SipUri] = {}
_SHARED_MAX = 1024


def parse_uri_shared(text: str) -> SipUri:
    """parse_uri for a URI that is only read (the URI of a From, To, Route, Contact value):
    the same text gives the same object, so the caller must not change it. Errors are raised
    each time, not kept."""
    u = _SHARED.get(text)
    if u is None:
        u = _parse_uri(text)
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[text] = u
    return u


def parse_uri(text: str) -> SipUri:
    """Parse a sip:, sips: or tel: URI. Another valid scheme raises 416, bad syntax 400.

    A new SipUri each time (the caller may change it), copied from parse_uri_shared's."""
    u = _SHARED.get(text) or parse_uri_shared(text)
    return SipUri(u.scheme, u.user, u.password, u.host, u.port,
                  dict(u.params) if u.params else {}, dict(u.headers) if u.headers else {})


def _parse_uri_py(text: str) -> SipUri:
    """parse_uri's work, not memoized (the reference; _parse_uri is the compiled form when
    built, which hands every URI but the usual sip: one to this function)."""
    text = text.strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.fullmatch(scheme):
        raise _bad("Malformed URI")
    if _FORBIDDEN_RE.search(text):
        raise _bad("Bad character in URI")
    low = scheme.lower()
    if low == "sip" or low == "sips":
        return _parse_sip(low, rest)
    if low == "tel":
        return _parse_tel(rest)
    raise SipParseError(416, "Unsupported URI Scheme")


#: the usual sip:/sips: URI parsed in one compiled call (kemi_core/sip/_fast.c, uri_parser):
#: a URI missing the memo (a Route's ftag, From/To/Contact of real traffic) costs ~200
#: bytecodes in Python. None when not built.
_uri_fast: Callable[[str], SipUri | None] | None
try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import uri_parser
except ImportError:  # not built: every URI parsed in Python
    _uri_fast = None
else:
    _uri_fast = uri_parser(SipUri)


def _parse_uri(text: str) -> SipUri:
    """parse_uri's work, not memoized."""
    if _uri_fast is not None:
        u = _uri_fast(text)
        if u is not None:
            return u
    return _parse_uri_py(text)


def _parse_params(text: str) -> dict[str, str | None]:
    """';'-separated params (the text after the first ';'), names lower-cased."""
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise _bad("Empty URI parameter")
        params[name.lower()] = value if eq else None
    return params


def _parse_sip(scheme: str, rest: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if colon:
            password = pw
        if not user:
            raise _bad("Empty user in URI")
        if not _USER_OK.issuperset(user):
            raise _bad("Bad character in URI user")
    rest, qm, hdr_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _bad("Bad IPv6 reference in URI")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and tail[0] != ":":
            raise _bad("Bad URI host")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_s = hostport.partition(":")
        port_text = port_text_s if colon else None
    if not _HOST_RE.fullmatch(host):
        raise _bad("Bad URI host")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
            raise _bad("Bad URI port")
        port = int(port_text)
        if port > 65535:
            raise _bad("Bad URI port")
    params = _parse_params(param_text) if semi else {}
    headers: dict[str, str] = {}
    if qm:
        for item in hdr_text.split("&"):
            name, _, value = item.partition("=")
            if not name:
                raise _bad("Empty URI header")
            headers[name] = value
    return SipUri(scheme, user, password, host, port, params, headers)


def _parse_tel(rest: str) -> SipUri:
    """tel: URIs (RFC 3966): the number goes to ``user`` (as Kamailio's $rU shows it)."""
    number, semi, param_text = rest.partition(";")
    if not number or "@" in number or "?" in number:
        raise _bad("Bad tel URI")
    params = _parse_params(param_text) if semi else {}
    return SipUri("tel", number, None, "", None, params, {})
