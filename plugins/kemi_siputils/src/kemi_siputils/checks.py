"""siputils tests on the message and on plain values: has_totag, is_request, is_first_hop,
is_uri, is_numeric, is_e164 and friends. Each returns Kamailio's int: 1 true, negative false."""

from __future__ import annotations

import ipaddress
import logging
import re

from kemi_core.api import MsgContext, SipParseError, message_fact, parse_uri

log = logging.getLogger("kemi.siputils")

_TEL_NUMBER = re.compile(r"\+?[0-9]+")
_E164 = re.compile(r"\+[0-9]{2,15}")


def _rc(ok: bool) -> int:
    return 1 if ok else -1


def has_totag(ctx: MsgContext) -> int:
    """1 when the To header carries a tag (a request inside a dialog), else -1."""
    try:
        return 1 if ctx.msg.to.tag else -1
    except SipParseError:
        log.error("has_totag: cannot parse the To header")
        return -1


def is_request(ctx: MsgContext) -> int:
    """1 when the current message is a request."""
    return 1 if ctx.msg.is_request else -1


def is_reply(ctx: MsgContext) -> int:
    """1 when the current message is a reply."""
    return -1 if ctx.msg.is_request else 1


message_fact(is_request, "kind", 1, -1)
message_fact(is_reply, "kind", -1, 1)


def is_first_hop(ctx: MsgContext) -> int:
    """is_first_hop_mode(0): the first proxy after the sender (one Via for a request; for a
    reply, our Record-Route on top, with an IP address, and a source that is not us)."""
    return is_first_hop_mode(ctx, 0)


def is_first_hop_mode(ctx: MsgContext, mode: int) -> int:
    """First hop after the original sender, best effort. A request: it carries a single Via.
    A reply: the top Record-Route URI is this server; with ``mode`` 0 its host must be an IP
    address and the reply must not come from that very address and port (a local loop). As
    Kamailio 5.6 (run): a reply from another port of our own IP, e.g. a callee on this host,
    is a first hop."""
    msg = ctx.msg
    try:
        if msg.is_request:
            return 1 if len(msg.vias) == 1 else -1
        rrs = msg.record_routes
    except SipParseError:
        return -1
    if not rrs:
        return -1
    uri = rrs[0].uri
    if uri is None:
        return -1
    port = uri.port or (5061 if uri.scheme == "sips" else 5060)
    if mode == 0:
        try:
            rr_ip = ipaddress.ip_address(uri.host.strip("[]"))
        except ValueError:
            return -1
        rcv = ctx.rcv
        if rcv.src_port == port and _same_ip(rcv.src_ip, rr_ip):
            return -1
    return _rc(ctx.core.is_myself(uri.host, port))


def _same_ip(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text.strip("[]")) == ip
    except ValueError:
        return False


def is_uri(ctx: MsgContext, value: str) -> int:
    """1 when ``value`` parses as a SIP, SIPS or tel URI."""
    if not value:
        return -1
    try:
        parse_uri(value)
    except SipParseError:
        return -1
    return 1


def is_tel_number(ctx: MsgContext, value: str) -> int:
    """1 when ``value`` is an optional '+' followed by digits only; -2 when not."""
    return 1 if value and _TEL_NUMBER.fullmatch(value) is not None else -2


def is_numeric(ctx: MsgContext, value: str) -> int:
    """1 when ``value`` is made of decimal digits only; -2 when not."""
    return 1 if value and value.isascii() and value.isdigit() else -2


def _alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def is_alphanum(ctx: MsgContext, value: str) -> int:
    """1 when ``value`` is made of ASCII letters and digits only; -2 when empty, -3 when
    another character is found."""
    if not value:
        return -2
    return 1 if all(_alnum(c) for c in value) else -3


def is_alphanumex(ctx: MsgContext, value: str, extra: str) -> int:
    """1 when ``value`` is made of ASCII letters, digits and the characters of ``extra``; -2
    when empty, -3 when another character is found."""
    if not value:
        return -2
    return 1 if all(_alnum(c) or c in extra for c in value) else -3


def is_e164(ctx: MsgContext, value: str) -> int:
    """1 when ``value`` is an E.164 number: '+' and 2 to 15 digits."""
    return _rc(_E164.fullmatch(value or "") is not None)


def is_uri_user_e164(ctx: MsgContext, uri: str) -> int:
    """1 when the user part of the SIP URI ``uri`` is an E.164 number."""
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return -1
    if parsed.scheme == "tel":  # a tel URI has no user part in Kamailio's parser
        return -1
    return _rc(parsed.user is not None and _E164.fullmatch(parsed.user) is not None)


def is_user(ctx: MsgContext, username: str) -> int:
    """1 when the credentials the auth module authorized for this request are for
    ``username`` (no authorized credentials: -1, as in Kamailio)."""
    user = ctx.extra.get("authorized_user")
    return _rc(user is not None and user == username)
