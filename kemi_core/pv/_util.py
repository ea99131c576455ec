"""Small helpers shared by the built-in PVs and the core exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import COMPACT_FORMS, parse_name_addr
from kemi_core.sip.uri import SipUri, parse_uri

if TYPE_CHECKING:
    from kemi_core.sip.message import SipMsg

T = TypeVar("T")


#: what a lazy-parse accessor raises on a malformed or missing part (read as $null)
READ_ERRORS = (SipParseError, AttributeError, ValueError, TypeError, IndexError, KeyError)


def safe(fn: Callable[[], T]) -> T | None:
    """Run a lazy-parse accessor; a malformed or missing part reads as $null, as in Kamailio."""
    try:
        return fn()
    except READ_ERRORS:
        return None


def header_key(name: str) -> str:
    """Case-insensitive header name with compact forms expanded (``f`` -> ``from``)."""
    low = name.strip().lower()
    return COMPACT_FORMS.get(low, low)


def header_lines(msg: SipMsg, name: str) -> list[str]:
    """The value of every header line called ``name`` (compact forms included), in order."""
    key = header_key(name)
    return [v for n, v in msg.iter_headers() if header_key(n) == key]


def parse_uri_or_none(text: str | None) -> SipUri | None:
    if not text:
        return None
    try:
        return parse_uri(text)
    except SipParseError:
        return None


def name_addr_uri(value: str | None) -> str | None:
    """URI text of a name-addr header value (P-Asserted-Identity, Diversion, Refer-To ...)."""
    if value is None:
        return None
    try:
        return parse_name_addr(value).uri_text
    except SipParseError:
        v = value.strip()
        if "<" in v and ">" in v:
            return v[v.index("<") + 1:v.index(">")]
        return v.split(";", 1)[0].strip() or None


def first_or_none(values: list[Any]) -> Any:
    return values[0] if values else None
