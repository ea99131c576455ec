"""siputils on headers: options_reply, is_supported, is_gruu, hdr_date_check and the
contact_param_* Base64URL encoding of Contact URIs."""

from __future__ import annotations

import base64
import logging
import time
from email.utils import parsedate_to_datetime

from kemi_core.api import MsgContext, SipParseError, parse_uri

log = logging.getLogger("kemi.siputils")

#: The option tags is_supported knows (Kamailio's list).
KNOWN_OPTIONS = frozenset({"path", "100rel", "timer", "eventlist", "gruu", "outbound"})


class OptionsSettings:
    accept = "*/*"
    accept_encoding = ""
    accept_language = "en"
    support = ""


options_settings = OptionsSettings()


def options_reply(ctx: MsgContext) -> int:
    """Answer an OPTIONS request without a user in its R-URI with 200 OK and the Accept,
    Accept-Encoding, Accept-Language and Supported headers of the module parameters; -1 for
    any other request."""
    msg = ctx.msg
    if not msg.is_request or msg.method != "OPTIONS":
        log.error("options_reply: called for a request that is not OPTIONS")
        return -1
    try:
        if msg.uri.user:
            log.error("options_reply: the R-URI has a user part")
            return -1
    except SipParseError:
        return -1
    sl = ctx.core.registry.lookup("sl", "sl_send_reply")
    if sl is None:
        log.error("options_reply: the sl module is not loaded")
        return -1
    s = options_settings
    headers = ctx.extra.setdefault("reply_headers", [])
    headers += [f"Accept: {s.accept}", f"Accept-Encoding: {s.accept_encoding}",
                f"Accept-Language: {s.accept_language}", f"Supported: {s.support}"]
    if int(sl.func(ctx, 200, "OK")) < 0:
        return int(sl.func(ctx, 500, "Server internal error"))
    return 1


def is_supported(ctx: MsgContext, option: str) -> int:
    """1 when ``option`` (path, 100rel, timer, eventlist, gruu, outbound) is listed in a
    Supported header of the message."""
    opt = option.strip().lower()
    if opt not in KNOWN_OPTIONS:
        log.error("is_supported: unknown option %r", option)
        return -1
    try:
        tags = [t.lower() for t in ctx.msg.supported]
    except SipParseError:
        return -1
    return 1 if opt in tags else -1


def is_gruu_uri(ctx: MsgContext, uri: str) -> int:
    """1 for a public GRUU (``gr=value``), 2 for a temporary one (``gr`` without a value),
    -1 when ``uri`` has no ``gr`` parameter or does not parse."""
    try:
        params = parse_uri(uri).params
    except SipParseError:
        return -1
    if "gr" not in params:
        return -1
    return 1 if params["gr"] else 2


def is_gruu(ctx: MsgContext) -> int:
    """is_gruu_uri on the R-URI."""
    if not ctx.msg.is_request:
        return -1
    return is_gruu_uri(ctx, ctx.msg.ruri)


def hdr_date_check(ctx: MsgContext, tdiff: int) -> int:
    """1 when the message has a Date header no older than ``tdiff`` seconds; -1 when it is
    missing, malformed or older."""
    value = ctx.msg.header("date")
    if value is None:
        return -1
    try:
        sent = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        log.error("hdr_date_check: bad Date header %r", value)
        return -1
    return 1 if sent + tdiff >= time.time() else -1


# ---- Contact URIs encoded in a parameter (contact_param_*) ------------------------------------
def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64url(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _rewrite_contacts(ctx: MsgContext, change: object) -> int:
    """Apply ``change(uri_text) -> new uri_text | None`` to every Contact URI."""
    msg = ctx.msg
    try:
        contacts = msg.contacts
    except SipParseError:
        return -1
    if not contacts or any(c.is_star for c in contacts):
        return -1
    values = []
    for c in contacts:
        new = change(c.uri_text)  # type: ignore[operator]
        if new is None:
            return -1
        values.append(c.raw.replace(c.uri_text, new, 1))
    msg.remove_header("contact")
    for v in values:
        msg.append_header("Contact", v)
    return 1


def contact_param_encode(ctx: MsgContext, pname: str, saddr: str) -> int:
    """Replace each Contact URI by ``saddr`` with a parameter ``pname`` holding the original
    URI in Base64URL."""
    if not pname or not saddr:
        return -1
    return _rewrite_contacts(ctx, lambda uri: f"{saddr};{pname}={_b64url(uri)}")


def _decoded(uri: str, pname: str) -> str | None:
    try:
        value = parse_uri(uri).params.get(pname.lower())
    except SipParseError:
        return None
    return _unb64url(value) if value else None


def contact_param_decode(ctx: MsgContext, pname: str) -> int:
    """Restore each Contact URI from its Base64URL parameter ``pname``."""
    return _rewrite_contacts(ctx, lambda uri: _decoded(uri, pname) or uri)


def contact_param_decode_ruri(ctx: MsgContext, pname: str) -> int:
    """Restore the R-URI from its Base64URL parameter ``pname``."""
    if not ctx.msg.is_request:
        return -1
    decoded = _decoded(ctx.msg.ruri, pname)
    if decoded is None:
        return -1
    ctx.msg.set_ruri(decoded)
    return 1


def contact_param_rm(ctx: MsgContext, pname: str) -> int:
    """Remove the parameter ``pname`` from every Contact URI."""
    def strip(uri: str) -> str:
        try:
            u = parse_uri(uri)
        except SipParseError:
            return uri
        params = {k: v for k, v in u.params.items() if k != pname.lower()}
        return str(u.with_(params=params))
    return _rewrite_contacts(ctx, strip)
