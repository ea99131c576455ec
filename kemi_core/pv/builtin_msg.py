"""Pseudo-variables read from the SIP message: first line, R-URI, From/To, headers, body."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.pv._util import (
    READ_ERRORS,
    header_lines,
    name_addr_uri,
    parse_uri_or_none,
    safe,
)
from kemi_core.pv.registry import PvError, PvValue, register_builtin
from kemi_core.sip.calls_fast import pv_msg_getter
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import parse_name_addr
from kemi_core.sip.syntax import method_bit

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.sip.headers import NameAddr
    from kemi_core.sip.uri import SipUri


# ---- first line ------------------------------------------------------------------------------
def _ruri(ctx: MsgContext) -> PvValue:
    return ctx.msg.ruri if ctx.msg.is_request else None


def _ruri_parsed(ctx: MsgContext) -> SipUri | None:
    msg = ctx.msg
    if not msg.is_request:
        return None
    try:
        return msg.uri
    except SipParseError:  # headers in it (refused for routing, RFC 4475 3.1.2.11): still read
        return parse_uri_or_none(msg.ruri)


def _uri_port(uri: SipUri | None) -> PvValue:
    # Kamailio 5.6 shows 5060 for a URI without a port (sips: and tel: too), 5061 only for
    # ;transport=tls.
    if uri is None:
        return None
    if uri.port is not None:
        return uri.port
    return 5061 if uri.transport == "tls" else 5060


def _uri_proto(uri: SipUri | None) -> PvValue:
    # Kamailio 5.6: the ;transport= value as written, else UDP (sips: too).
    if uri is None:
        return None
    return uri.params.get("transport") or "UDP"


def rewrite_ruri(ctx: MsgContext, **changes: object) -> None:
    """Replace parts of the R-URI (``$rU = ...``, KSR.setuser ...)."""
    uri = _ruri_parsed(ctx)
    if uri is None:
        raise PvError("the message has no valid Request-URI to rewrite")
    ctx.msg.set_ruri(str(uri.with_(**changes)))


def _set_ru(ctx: MsgContext, value: PvValue) -> None:
    if value is None or not ctx.msg.is_request:
        raise PvError("$ru needs a request and a URI value")
    if parse_uri_or_none(str(value)) is None:
        raise PvError(f"invalid URI for $ru: {value!r}")
    ctx.msg.set_ruri(str(value))


def _set_ruser(ctx: MsgContext, value: PvValue) -> None:
    rewrite_ruri(ctx, user=None if value in (None, "") else str(value),
                 **({"password": None} if value in (None, "") else {}))


def _set_rhost(ctx: MsgContext, value: PvValue) -> None:
    if value in (None, ""):
        raise PvError("$rd cannot be empty")
    rewrite_ruri(ctx, host=str(value))


def _set_rport(ctx: MsgContext, value: PvValue) -> None:
    if value in (None, "", 0, "0"):
        rewrite_ruri(ctx, port=None)
        return
    try:
        port = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise PvError(f"invalid port for $rp: {value!r}")
    if not 0 < port < 65536:
        raise PvError(f"invalid port for $rp: {value!r}")
    rewrite_ruri(ctx, port=port)


_NH_KEYS = ("u", "U", "d", "p", "P")


def _nh_key(arg: str) -> str:
    key = arg.strip()
    if key not in _NH_KEYS:
        raise PvError(f"$nh({arg}): unknown key (known: {', '.join(_NH_KEYS)})")
    return key


def _next_hop(ctx: MsgContext, key: str) -> PvValue:
    """$nh(key) as Kamailio reads it: a missing port is 5060 and a missing transport "UDP"
    (whatever the scheme); the transport parameter is given as written."""
    text = ctx.dst_uri or _ruri(ctx)
    if not text:
        return None
    if key == "u":
        return text
    uri = parse_uri_or_none(str(text))
    if uri is None:
        return None
    if key == "U":
        return uri.user
    if key == "d":
        return uri.host
    if key == "p":
        return uri.port if uri.port is not None else 5060
    return uri.params.get("transport") or "UDP"


def _orig_uri(ctx: MsgContext) -> SipUri | None:
    return parse_uri_or_none(ctx.orig_ruri)


def _reply_only(ctx: MsgContext, value: PvValue) -> PvValue:
    return None if ctx.msg.is_request else value


# ---- $du and friends ---------------------------------------------------------------------------
def _set_du(ctx: MsgContext, value: PvValue) -> None:
    # a script sets $du for every request it relays, nearly always to a str: no str() call
    text = value if value.__class__ is str else "" if value is None else str(value)
    if not text:  # None or "": no destination
        ctx.dst_uri = None
        return
    if not _valid_uri(text):
        raise PvError(f"invalid URI for $du: {value!r}")
    ctx.dst_uri = text


@functools.lru_cache(maxsize=512)
def _valid_uri(text: str) -> bool:
    """Whether ``text`` parses as a URI; a script sets $du to a few values, over and over."""
    return parse_uri_or_none(text) is not None


def _du_parsed(ctx: MsgContext) -> SipUri | None:
    return parse_uri_or_none(ctx.dst_uri)


# ---- From / To -------------------------------------------------------------------------------
def _from(ctx: MsgContext) -> NameAddr | None:
    return safe(lambda: ctx.msg.from_)


def _to(ctx: MsgContext) -> NameAddr | None:
    return safe(lambda: ctx.msg.to)


def _na_uri_text(na: NameAddr | None) -> PvValue:
    return na.uri_text if na is not None else None


#: the internal error a From/To URI that does not parse leaves for sl_reply_error (Kamailio's)
BAD_URI_ERROR = (479, "Regretfully, we were not able to process the URI")


def _xuri(ctx: MsgContext, to: bool) -> SipUri | None:
    """The From (``to``: To) URI; a header or URI that does not parse reads as $null and
    leaves Kamailio's bad-URI error for sl_reply_error."""
    try:
        return (ctx.msg.to if to else ctx.msg.from_).uri
    except SipParseError:
        ctx.extra["last_error"] = BAD_URI_ERROR
    except (AttributeError, ValueError, TypeError, IndexError, KeyError):
        pass
    return None


def _xuri_user(ctx: MsgContext, to: bool) -> PvValue:
    u = _xuri(ctx, to)
    return u.user if u is not None else None


def _xuri_host(ctx: MsgContext, to: bool) -> PvValue:
    u = _xuri(ctx, to)
    return u.host if u is not None and u.host else None


def _from_host(ctx: MsgContext) -> PvValue:
    """$fd: ``_xuri_host(ctx, False)`` written out, registered as itself (not through a lambda
    or a partial, whose keyword costs a dict per call): scripts read $fd for the realm of
    every request they authenticate."""
    try:
        u = ctx.msg.from_.uri
    except SipParseError:
        ctx.extra["last_error"] = BAD_URI_ERROR
        return None
    except (AttributeError, ValueError, TypeError, IndexError, KeyError):
        return None
    return u.host if u is not None and u.host else None


def _compiled(which: int, pure: Callable[[MsgContext], PvValue]) -> Callable[[MsgContext], PvValue]:
    """$fd (0), $ft (1), $tt (2) read in C (kemi_core.sip.pv_msg_getter: scripts read them for
    every request), ``pure`` for what raises and when _fast is not built."""
    return pure if pv_msg_getter is None else pv_msg_getter((which, pure))  # type: ignore[no-any-return]


def _na_display(na: NameAddr | None) -> PvValue:
    """The display name as the header writes it, quotes kept ($fn, $tn, $pn: Kamailio's)."""
    if na is None or not na.display or "<" not in na.raw:
        return None
    return na.raw[:na.raw.index("<")].strip() or None


def _na_tag(na: NameAddr | None) -> PvValue:
    return safe(lambda: na.tag) if na is not None else None  # type: ignore[union-attr]


def _tag(ctx: MsgContext, to: bool) -> PvValue:
    """$ft (``to``: $tt): ``_na_tag(_from(ctx))`` in one frame (scripts test $tt on every
    request)."""
    try:
        return (ctx.msg.to if to else ctx.msg.from_).tag
    except READ_ERRORS:
        return None


# ---- headers ---------------------------------------------------------------------------------
def _hdr(ctx: MsgContext, name: str) -> PvValue:
    return ctx.msg.header(name)


def _hdr_index(ctx: MsgContext, name: str, idx: int | None) -> PvValue:
    # Kamailio indexes header *bodies*: $(hdr(Via)[1]) is the second Via line; [*] joins all.
    lines = header_lines(ctx.msg, name)
    if idx is None:
        return ",".join(lines) if lines else None
    try:
        return lines[idx]
    except IndexError:
        return None


def _hdrc(ctx: MsgContext, name: str) -> PvValue:
    return ctx.msg.header_count(name)


def _header_name_arg(raw: str) -> str:
    name = raw.strip()
    if not name or any(c in name for c in " \t:\r\n"):
        raise PvError(f"invalid header name {raw!r}")
    return name


def _content_length(ctx: MsgContext) -> PvValue:
    # the header's value: $null without one, as Kamailio 5.6 (not the body's length)
    return safe(lambda: ctx.msg.content_length)


def _body(ctx: MsgContext) -> PvValue:
    body = ctx.msg.body
    return body.decode("utf-8", "replace") if body else None


def _msg_buf(ctx: MsgContext) -> PvValue:
    return ctx.msg.to_bytes().decode("utf-8", "replace")


def _cseq_num(ctx: MsgContext) -> PvValue:
    cs = safe(lambda: ctx.msg.cseq)
    return cs.number if cs is not None else None


def _first_contact(ctx: MsgContext) -> PvValue:
    return ctx.msg.header("Contact")


def _call_id(ctx: MsgContext) -> PvValue:
    try:
        return ctx.msg.call_id or None
    except SipParseError:
        return None


def _len(value: PvValue) -> PvValue:
    return len(str(value)) if value else 0  # no user: 0, as Kamailio


def _name_addr_of(ctx: MsgContext, header: str) -> NameAddr | None:
    """The first ``header`` as a name-addr (P-Preferred-Identity, Diversion), None when absent
    or unreadable."""
    value = ctx.msg.header(header)
    if value is None:
        return None
    try:
        return parse_name_addr(value)
    except SipParseError:
        return None


def _ppi_uri_part(ctx: MsgContext, user: bool) -> PvValue:
    na = _name_addr_of(ctx, "P-Preferred-Identity")
    u = na.uri if na is not None else None
    if u is None:
        return None
    return (u.user or None) if user else u.host


def _diversion_param(ctx: MsgContext, name: str) -> PvValue:
    na = _name_addr_of(ctx, "Diversion")
    return na.params.get(name) if na is not None else None


def _dset(ctx: MsgContext) -> PvValue:
    """$ds: the added branches as a Contact header, Kamailio's way (``Contact: <uri>;q=0.5,
    <uri>``; branch 0, the R-URI, left out)."""
    if not ctx.branches:
        return None
    parts = [f"<{b.uri}>" if b.q < 0 else f"<{b.uri}>;q={_q_text(b.q)}" for b in ctx.branches]
    return "Contact: " + ", ".join(parts)


def _q_text(q: int) -> str:
    """A q value kept in thousandths as SIP writes it: 500 -> 0.5, 1000 -> 1."""
    return f"{q / 1000:.3f}".rstrip("0").rstrip(".")


def _acc_user(ctx: MsgContext, with_host: bool) -> PvValue:
    """$Au ($AU): the From URI's user@host (user), what Kamailio 5.6 gives (learnt by running
    it: also when the request carries credentials, read by has_credentials or not)."""
    u = _xuri(ctx, False)
    if u is None:
        return None
    return f"{u.user}@{u.host}" if with_host else u.user


def _method_id(ctx: MsgContext) -> PvValue:
    method = ctx.msg.method
    return method_bit(method) if method else None


def _register() -> None:
    reg = register_builtin
    reg("ru", _ruri, _set_ru, doc="Request-URI (as rewritten so far)")
    reg("rU", lambda c: _u.user if (_u := _ruri_parsed(c)) else None, _set_ruser,
        doc="user part of the R-URI")
    reg("rd", lambda c: _u.host or None if (_u := _ruri_parsed(c)) else None, _set_rhost,
        doc="domain of the R-URI")
    reg("rp", lambda c: _uri_port(_ruri_parsed(c)), _set_rport, doc="port of the R-URI")
    reg("rP", lambda c: _uri_proto(_ruri_parsed(c)), doc="transport of the R-URI")
    reg("rz", lambda c: _u.scheme if (_u := _ruri_parsed(c)) else None, doc="R-URI scheme")
    reg("ou", lambda c: c.orig_ruri, doc="R-URI as received")
    reg("oU", lambda c: _u.user if (_u := _orig_uri(c)) else None, doc="user of $ou")
    reg("od", lambda c: _u.host or None if (_u := _orig_uri(c)) else None,
        doc="domain of $ou")
    reg("op", lambda c: _uri_port(_orig_uri(c)), doc="port of $ou")
    reg("oP", lambda c: _uri_proto(_orig_uri(c)), doc="transport of $ou")
    reg("du", lambda c: c.dst_uri, _set_du, doc="destination URI (outbound proxy)")
    reg("nh", _next_hop, takes_arg=True, parse_arg=_nh_key,
        doc="next hop ($du, else the R-URI): u uri, U user, d host, p port, P transport")
    reg("dd", lambda c: _u.host if (_u := _du_parsed(c)) else None, doc="domain of $du")
    reg("dp", lambda c: _uri_port(_du_parsed(c)), doc="port of $du")
    reg("dP", lambda c: _uri_proto(_du_parsed(c)), doc="transport of $du")
    reg("rm", lambda c: c.msg.method or None, doc="method (CSeq method for replies)")
    reg("rs", lambda c: _reply_only(c, c.msg.status), doc="reply status code")
    reg("rr", lambda c: _reply_only(c, c.msg.reason), doc="reply reason phrase")
    reg("rv", lambda c: c.msg.version, doc="SIP version")
    reg("mt", lambda c: 1 if c.msg.is_request else 2, doc="message type: 1 request, 2 reply")
    reg("fu", lambda c: _na_uri_text(_from(c)), doc="From URI")
    reg("fU", lambda c: _xuri_user(c, False), doc="From URI user")
    reg("fd", _compiled(0, _from_host), doc="From URI domain")
    reg("fn", lambda c: _na_display(_from(c)), doc="From display name")
    reg("ft", _compiled(1, functools.partial(_tag, to=False)), doc="From tag")
    reg("tu", lambda c: _na_uri_text(_to(c)), doc="To URI")
    reg("tU", lambda c: _xuri_user(c, True), doc="To URI user")
    reg("td", lambda c: _xuri_host(c, True), doc="To URI domain")
    reg("tn", lambda c: _na_display(_to(c)), doc="To display name")
    reg("tt", _compiled(2, functools.partial(_tag, to=True)), doc="To tag")
    reg("ci", _call_id, doc="Call-ID")
    reg("cs", _cseq_num, doc="CSeq number")
    reg("ct", _first_contact, doc="first Contact header value")
    reg("cl", _content_length, doc="Content-Length header value ($null without one)")
    reg("cT", lambda c: safe(lambda: c.msg.content_type), doc="Content-Type")
    reg("ua", lambda c: c.msg.header("User-Agent"), doc="User-Agent header")
    reg("ai", lambda c: name_addr_uri(c.msg.header("P-Asserted-Identity")),
        doc="P-Asserted-Identity URI")
    reg("pu", lambda c: name_addr_uri(c.msg.header("P-Preferred-Identity")),
        doc="P-Preferred-Identity URI")
    reg("re", lambda c: name_addr_uri(c.msg.header("Remote-Party-ID")),
        doc="Remote-Party-ID URI")
    reg("di", lambda c: name_addr_uri(c.msg.header("Diversion")), doc="Diversion URI")
    reg("rt", lambda c: name_addr_uri(c.msg.header("Refer-To")), doc="Refer-To URI")
    reg("pU", lambda c: _ppi_uri_part(c, True), doc="P-Preferred-Identity URI user")
    reg("pd", lambda c: _ppi_uri_part(c, False), doc="P-Preferred-Identity URI domain")
    reg("pn", lambda c: _na_display(_name_addr_of(c, "P-Preferred-Identity")),
        doc="P-Preferred-Identity display name")
    reg("dir", lambda c: _diversion_param(c, "reason"), doc="Diversion reason parameter")
    reg("dip", lambda c: _diversion_param(c, "privacy"), doc="Diversion privacy parameter")
    reg("ds", _dset, doc="the added branches as a Contact header (destination set)")
    reg("bs", lambda c: len(c.msg.body or b""), doc="body size")
    reg("Au", lambda c: _acc_user(c, True), doc="user@host for accounting (the From URI's)")
    reg("AU", lambda c: _acc_user(c, False), doc="user for accounting (the From URI's)")
    reg("rmid", _method_id, doc="method as Kamailio's method bit")
    reg("rb", _body, doc="message body")
    reg("ml", lambda c: len(c.msg.to_bytes()), doc="message length")
    reg("mb", _msg_buf, doc="whole message")
    reg("mbu", _msg_buf, doc="whole message with the changes made so far")
    reg("fUl", lambda c: _len(_xuri_user(c, False)), doc="length of the From URI user")
    reg("tUl", lambda c: _len(_xuri_user(c, True)), doc="length of the To URI user")
    reg("rUl", lambda c: _len(_u.user if (_u := _ruri_parsed(c)) else None),
        doc="length of the R-URI user")
    reg("hdr", _hdr, takes_arg=True, parse_arg=_header_name_arg, index_getter=_hdr_index,
        doc="first header of that name ($(hdr(X)[n]) for the n-th)")
    reg("hdrc", _hdrc, takes_arg=True, parse_arg=_header_name_arg,
        doc="number of header lines of that name")


_register()
