"""Address-of-record keys and the small parsing helpers registrar shares."""

from __future__ import annotations

from urllib.parse import unquote

from kemi_core.sip import SipParseError, method_bit, parse_uri, split_commas

MAX_AOR = 256


#: AORs of URIs seen lately: a phone refreshes its registration with the same To URI, and every
#: save, lookup and registered() needs the AOR of one (bounded: emptied when full).
_AORS: dict[tuple[str, bool, bool, str], str] = {}
AOR_MEMO_SIZE = 16384


class AorError(ValueError):
    """The URI gives no usable address of record (the reason is Kamailio's words)."""


def aor_of(uri_text: str, use_domain: bool, case_sensitive: bool, realm_prefix: str = "") -> str:
    """The usrloc key of a SIP URI: ``user`` (or ``user@domain`` with use_domain), unescaped,
    lower-cased unless case_sensitive; ``realm_prefix`` is stripped from the domain."""
    key = (uri_text, use_domain, case_sensitive, realm_prefix)
    aor = _AORS.get(key)
    if aor is None:
        aor = _aor_of(uri_text, use_domain, case_sensitive, realm_prefix)
        if len(_AORS) >= AOR_MEMO_SIZE:
            _AORS.clear()
        _AORS[key] = aor
    return aor


def _aor_of(uri_text: str, use_domain: bool, case_sensitive: bool, realm_prefix: str) -> str:
    try:
        uri = parse_uri(uri_text)
    except SipParseError:
        raise AorError("Error while parsing AOR")
    user = uri.user or ""
    if "%" in user:
        user = unquote(user)
    if not case_sensitive:
        user = user.lower()
    if use_domain:
        host = uri.host.lower()
        if realm_prefix and host.startswith(realm_prefix) and len(host) > len(realm_prefix):
            host = host[len(realm_prefix):]
        aor = f"{user}@{host}" if user else host  # (no user: Kamailio 5.6's AOR is the host)
    else:
        aor = user
    if len(aor) > MAX_AOR:
        raise AorError("Address Of Record too long")
    return aor


def methods_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        name = name.strip().strip('"').strip()
        if name:
            mask |= method_bit(name)
    return mask


def first_uri(path: str) -> str:
    """The URI of the first element of a Path vector (``<sip:a;lr>,<sip:b>`` -> ``sip:a;lr``)."""
    parts = split_commas(path, strict=False)
    head = parts[0].strip() if parts else ""
    if head.startswith("<"):
        return head[1:head.find(">")] if ">" in head else head[1:]
    return head
