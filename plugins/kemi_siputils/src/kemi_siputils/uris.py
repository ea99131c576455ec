"""siputils on URIs: R-URI parameters, URI and AoR comparison (RFC 3261 19.1.4), tel2sip,
set_uri_user/host and header-name comparison."""

from __future__ import annotations

import logging
import re

from kemi_core.api import MsgContext, PvError, SipParseError, SipUri, get_pv, parse_uri, set_pv

log = logging.getLogger("kemi.siputils")

#: Compact header forms (RFC 3261 7.3.3 and later RFCs), for cmp_hdr_name.
_COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
            "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
            "v": "via", "r": "refer-to", "b": "referred-by", "o": "event", "u": "allow-events",
            "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
            "x": "session-expires", "y": "identity", "n": "identity-info"}


def _ruri(ctx: MsgContext) -> SipUri | None:
    if not ctx.msg.is_request:
        return None
    try:
        return ctx.msg.uri
    except SipParseError:
        return None


def uri_param(ctx: MsgContext, name: str) -> int:
    """1 when the R-URI has the parameter ``name`` without a value."""
    uri = _ruri(ctx)
    if uri is None:
        return -1
    key = name.lower()
    return 1 if key in uri.params and uri.params[key] is None else -1


def uri_param_value(ctx: MsgContext, name: str, value: str) -> int:
    """1 when the R-URI has the parameter ``name`` with exactly the value ``value``."""
    uri = _ruri(ctx)
    if uri is None:
        return -1
    return 1 if uri.params.get(name.lower(), None) == value else -1


def uri_param_any(ctx: MsgContext, name: str) -> int:
    """1 when the R-URI has the parameter ``name``, with or without a value."""
    uri = _ruri(ctx)
    return 1 if uri is not None and name.lower() in uri.params else -1


def uri_param_rm(ctx: MsgContext, name: str) -> int:
    """Remove the parameter ``name`` from the R-URI (1 also when it was absent)."""
    uri = _ruri(ctx)
    if uri is None:
        return -1
    key = name.lower()
    if key in uri.params:
        params = {k: v for k, v in uri.params.items() if k != key}
        ctx.msg.set_ruri(str(uri.with_(params=params)))
    return 1


def add_uri_param(ctx: MsgContext, param: str) -> int:
    """Append ``;param`` (``name`` or ``name=value``) to the R-URI."""
    uri = _ruri(ctx)
    if uri is None or not param:
        return -1
    name, sep, value = param.partition("=")
    params = dict(uri.params)
    params[name.strip().lower()] = value if sep else None
    ctx.msg.set_ruri(str(uri.with_(params=params)))
    return 1


def get_uri_param(ctx: MsgContext, name: str, var: str) -> int:
    """Store the value of R-URI parameter ``name`` in the variable ``var`` (-1 if absent)."""
    uri = _ruri(ctx)
    key = name.lower()
    if uri is None or key not in uri.params:
        return -1
    try:
        set_pv(ctx, var, uri.params[key] or "")
    except PvError as exc:
        log.error("get_uri_param: cannot set %s: %s", var, exc)
        return -1
    return 1


def _parse(text: str) -> SipUri | None:
    try:
        return parse_uri(text)
    except SipParseError:
        return None


def _uri_equal(a: SipUri, b: SipUri) -> bool:
    """RFC 3261 19.1.4: scheme, user and password case-sensitive (escapes decoded), host
    case-insensitive, port as written, the transport/user/ttl/method/maddr parameters equal
    when present in either, other parameters equal when present in both."""
    from urllib.parse import unquote

    if a.scheme != b.scheme:
        return False
    if unquote(a.user or "") != unquote(b.user or "") or (a.password or "") != (b.password or ""):
        return False
    if a.host.lower() != b.host.lower() or a.port != b.port:
        return False
    for key in ("transport", "user", "ttl", "method", "maddr"):
        va, vb = a.params.get(key), b.params.get(key)
        if (va is None) != (vb is None) or (va or "").lower() != (vb or "").lower():
            return False
    for key in set(a.params) & set(b.params):
        if (a.params[key] or "").lower() != (b.params[key] or "").lower():
            return False
    return {k.lower(): v for k, v in a.headers.items()} == {k.lower(): v for k, v in b.headers.items()}


def cmp_uri(ctx: MsgContext, uri1: str, uri2: str) -> int:
    """1 when the two values are equal as SIP URIs (RFC 3261 19.1.4), -1 when not, -2 when
    one does not parse."""
    a, b = _parse(uri1), _parse(uri2)
    if a is None or b is None:
        return -2
    return 1 if _uri_equal(a, b) else -1


def cmp_aor(ctx: MsgContext, uri1: str, uri2: str) -> int:
    """1 when the two SIP URIs name the same address of record: user and host (host
    case-insensitive) and port, parameters ignored; -2 when one does not parse."""
    a, b = _parse(uri1), _parse(uri2)
    if a is None or b is None:
        return -2
    same = (a.user or "") == (b.user or "") and a.host.lower() == b.host.lower() \
        and (a.port or 5060) == (b.port or 5060)
    return 1 if same else -1


def cmp_hdr_name(ctx: MsgContext, name1: str, name2: str) -> int:
    """1 when the two strings name the same header (case-insensitive, compact forms too)."""
    # Like Kamailio's header parser, a name ends at the first ':' ("From: x" names From).
    n1, n2 = (n.split(":", 1)[0].strip() for n in (name1, name2))
    if not _TOKEN.fullmatch(n1) or not _TOKEN.fullmatch(n2):
        return -2
    def norm(n: str) -> str:
        return _COMPACT.get(n.lower(), n.lower())
    return 1 if norm(n1) == norm(n2) else -1


def _set_uri_part(ctx: MsgContext, var: str, what: str, value: str) -> int:
    try:
        current = get_pv(ctx, var)
    except PvError as exc:
        log.error("set_uri_%s: %s", what, exc)
        return -1
    uri = _parse(str(current)) if current is not None else None
    if uri is None:
        log.error("set_uri_%s: %s holds no SIP URI", what, var)
        return -1
    if what == "user":
        new = uri.with_(user=value or None, password=uri.password if value else None)
    else:
        if not value:
            return -1
        new = uri.with_(host=value)
    try:
        set_pv(ctx, var, str(new))
    except PvError as exc:
        log.error("set_uri_%s: cannot set %s: %s", what, var, exc)
        return -1
    return 1


def set_uri_user(ctx: MsgContext, var: str, user: str) -> int:
    """Set the user part of the SIP URI held in the writable variable ``var``."""
    return _set_uri_part(ctx, var, "user", user)


def set_uri_host(ctx: MsgContext, var: str, host: str) -> int:
    """Set the host part of the SIP URI held in the writable variable ``var``."""
    return _set_uri_part(ctx, var, "host", host)


_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")  # RFC 3261 token: a header name
_VISUAL = str.maketrans("", "", "-.()")


def tel2sip_uri(uri: str, hostpart: str) -> str | None:
    """RFC 3261 19.1.6: tel:NUMBER;params -> sip:NUMBER;params@HOST;user=phone (visual
    separators removed from the number, parameters lower-cased). None when not a tel URI."""
    if uri[:4].lower() != "tel:":
        return None
    number, *params = uri[4:].split(";")
    user = number.translate(_VISUAL)
    if params:
        user += ";" + ";".join(p.lower() for p in params)
    host = hostpart[4:] if hostpart[:4].lower() == "sip:" else hostpart
    return f"sip:{user}@{host};user=phone"


def tel2sip(ctx: MsgContext, uri: str, hostpart: str, result: str) -> int:
    """Convert the tel URI ``uri`` to a SIP URI on ``hostpart`` and store it in ``result``:
    1 converted, 2 not a tel URI (nothing done), -1 error."""
    sip = tel2sip_uri(uri, hostpart)
    if sip is None:
        return 2
    try:
        set_pv(ctx, result, sip)
    except PvError as exc:
        log.error("tel2sip: cannot set %s: %s", result, exc)
        return -1
    return 1
