"""What a REGISTER asks for, read once before the location record is touched.

Errors carry Kamailio's reply for them: the status, its reason phrase and the text of the
``P-Registrar-Error`` header.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from kemi_core.api import MsgContext, get_pv
from kemi_core.sip import (
    NameAddr,
    SipMsg,
    SipParseError,
    header_key,
    parse_uri,
    reg_known_request,
    split_commas,
)
from kemi_registrar.aor import AorError, aor_of, first_uri, methods_mask
from kemi_registrar.params import RegParams

#: save() flags.
SAVE_MEMORY_ONLY, SAVE_NO_REPLY, SAVE_SINGLE, SAVE_NO_RANGE, SAVE_PREPARE_REPLY = 1, 2, 4, 8, 16
Q_UNSPECIFIED = -1

_tuple_new = tuple.__new__


class RegError(Exception):
    """A REGISTER refused: Kamailio's status, reason and P-Registrar-Error text."""

    def __init__(self, detail: str, code: int = 400, reason: str = "Bad Request",
                 headers: tuple[tuple[str, str], ...] = (), rc: int = -1, late: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.reason = reason
        self.headers = headers
        self.rc = rc
        #: found while going through the contacts: the reply lists the AOR's current ones
        self.late = late
        self.aor: str | None = None


def too_brief(min_expires: int) -> RegError:
    return RegError("Interval too brief", 423, "Interval Too Brief",
                    (("Min-Expires", str(min_expires)),), late=True)


class Binding(NamedTuple):
    """One Contact of the REGISTER, with the expiry and q it gets."""

    uri: str
    expires: int  # seconds from now; 0 removes the binding
    q: int
    instance: str | None
    reg_id: int
    methods: int


class Request(NamedTuple):
    aor: str
    star: bool
    bindings: tuple[Binding, ...]
    callid: str
    cseq: int
    user_agent: str
    received: str | None
    path: str | None  # the Path vector to store
    path_reply: str | None  # the Path to echo in the 200
    path_unsupported: bool  # path_mode 2 and no Supported: path: saved, answered 420
    socket: str
    cflags: int
    max_contacts: int


def _uri_of(msg: SipMsg, uri: str | None) -> str:
    if uri:
        return uri
    try:
        return msg.to.uri_text
    except SipParseError:
        raise RegError("To header not found")


def _expires_header(msg: SipMsg) -> int | None:
    try:
        return msg.expires
    except (SipParseError, ValueError):
        return None  # a malformed Expires is ignored, as Kamailio does


def _xavp_cfg(ctx: MsgContext, p: RegParams) -> dict[str, Any] | None:
    """The first item of the xavp_cfg class (run-time settings), None without one."""
    if not p.xavp_cfg:
        return None
    items = ctx.xavps.get(p.xavp_cfg)
    return items[0] if items else None


def _ranged(expires: int, percent: int) -> int:
    if percent <= 0 or expires <= 0:
        return expires
    return expires - random.randint(0, expires * min(percent, 100) // 100)


def _q_of(na: NameAddr, override: int | None, default_q: int) -> int:
    if override is not None:
        return override
    text = na.params.get("q")
    if text is None:
        return default_q
    try:
        value = float(text)
    except ValueError:
        raise RegError("Invalid q param in contact")
    if not 0 <= value <= 1:
        raise RegError("Invalid q param in contact")
    return round(value * 1000)


def _socket(ctx: MsgContext, p: RegParams, cfg: dict[str, Any] | None) -> str:
    forced = cfg.get("socket") if cfg else None
    if forced:
        return str(forced)
    if p.sock_flag >= 0 and ctx.flags & (1 << p.sock_flag) and p.sock_hdr_name:
        value = ctx.msg.header(p.sock_hdr_name)
        if value:
            return value.strip()
    rcv = ctx.rcv
    host = f"[{rcv.dst_ip}]" if ":" in rcv.dst_ip else rcv.dst_ip
    return f"{rcv.proto}:{host}:{rcv.dst_port}"


_NO_PATH: tuple[None, None, None] = (None, None, None)


def _path(msg: SipMsg, p: RegParams) -> tuple[str | None, str | None, str | None]:
    """(path to store, Path for the reply, received taken from the first Path URI)."""
    if not p.use_path or not msg.has_header("path"):
        return _NO_PATH
    values = [v.strip() for name, v in msg.iter_headers()
              if name.lower() == "path" and v.strip()]
    if not values:
        return _NO_PATH
    vector = ",".join(values)
    supported = "path" in (t.lower() for t in msg.supported)
    echo = vector if p.path_mode == 2 or (p.path_mode == 1 and supported) else None
    received = None
    if p.path_use_received:
        try:
            received = parse_uri(first_uri(vector)).params.get("received")
        except SipParseError:
            raise RegError("Path parse error")
    return vector, echo, received


def _has_star(msg: SipMsg) -> bool:
    return any(part.strip() == "*" for value in msg.headers("contact")
               for part in split_commas(value, strict=False))


#: Bindings computed lately, by what they are computed from (_memo_key): a phone refreshes its
#: registration with the same Contact, Expires and Allow, so the Contact parsing and the
#: expires/q/methods rules run once per phone, not once per REGISTER. Only valid ones are kept;
#: bounded (emptied when full), and emptied when the module is initialised again.
_BINDINGS: dict[tuple[Any, ...], tuple[Binding, ...]] = {}
BINDINGS_MEMO_SIZE = 16384


#: Whole requests computed lately (Call-ID, CSeq and branch flags aside: a refresh changes
#: them), by the raw values they are computed from (_PHONE_HEADERS' lines, parse_request's
#: tail): a phone refreshes with the same To, Contact, Expires, Allow and User-Agent lines on
#: the same socket, so everything but the Call-ID and CSeq is read once per phone. Only requests that
#: passed every check are kept; bounded (emptied when full), and emptied when the module is
#: initialised again.
_REQUESTS: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[Any, ...], int]] = {}
REQUESTS_MEMO_SIZE = 16384


def forget_bindings() -> None:
    _BINDINGS.clear()
    _REQUESTS.clear()


def memoisable(p: RegParams) -> bool:
    """Whether a request may come from _REQUESTS under these parameters: nothing it holds
    may depend on more than those values (no run-time settings, Path, received AVP
    or socket header; the random expires ranges are left out per message, by flags)."""
    return not (p.xavp_cfg or p.use_path or p.received_avp or p.sock_flag >= 0)


#: The headers a memoised request is computed from (with parse_request's tail).
_PHONE_HEADERS = frozenset(("to", "contact", "expires", "allow", "user-agent"))


def _memo_key(ctx: MsgContext, p: RegParams, flags: int, hdr_expires: int | None,
              q_override: int | None) -> tuple[Any, ...] | None:
    """What the bindings of this REGISTER depend on, or None when they cannot be memoised
    (no Contact or several Contact or Allow lines, random expires ranges); not called when
    xavp_cfg settings apply to the message."""
    msg = ctx.msg
    keys = msg.header_keys
    if keys.count("contact") != 1:
        return None
    allows = keys.count("allow")
    if allows > 1:
        return None
    ranged = not flags & SAVE_NO_RANGE
    if ranged and (p.expires_range > 0 or p.default_expires_range > 0):
        return None
    return (msg.value_at(keys.index("contact")),
            msg.value_at(keys.index("allow")) if allows else None,
            hdr_expires, ranged, q_override)


def parse_request(ctx: MsgContext, p: RegParams, use_domain: bool, flags: int,
                  uri: str | None, q_override: int | None, memo: bool = False) -> Request:
    """Everything save() needs from the REGISTER (RegError when it must be refused);
    ``memo``: memoisable(p), whole requests are looked up in _REQUESTS first."""
    no_range = flags & SAVE_NO_RANGE
    if not memo or (not no_range and (p.expires_range > 0 or p.default_expires_range > 0)):
        return _parse_request(ctx, p, use_domain, flags, uri, q_override)  # (random ranges)
    # What a whole request depends on besides its Call-ID, CSeq, branch flags and the
    # _PHONE_HEADERS lines (byte for byte), with memoisable parameters: the save() arguments
    # and the receiving socket.
    rcv = ctx.rcv
    tail = (uri, use_domain, no_range, q_override, rcv.proto, rcv.dst_ip, rcv.dst_port)
    if reg_known_request is not None:  # (the lookup and the rebuild below, compiled)
        made: Request | None = reg_known_request(ctx.msg, tail, ctx.bflags, _REQUESTS,
                                                 _PHONE_HEADERS, Request)
        if made is not None:
            return made
    key = (ctx.msg.lines_of(_PHONE_HEADERS), *tail)
    known = _REQUESTS.get(key)
    if known is None:
        req = _parse_request(ctx, p, use_domain, flags, uri, q_override)
        if len(_REQUESTS) >= REQUESTS_MEMO_SIZE:
            _REQUESTS.clear()
        # (the fields before the Call-ID, those between the CSeq and the branch flags, the last)
        _REQUESTS[key] = (req[:3], req[5:11], req[12])
        return req
    # the checks _parse_request makes after the ones ``known`` passed
    callid, cseq = _callid_cseq(ctx.msg)
    head, middle, last = known
    return _tuple_new(Request, (*head, callid, cseq, *middle, ctx.bflags, last))  # type: ignore[no-any-return]


def _callid_cseq(msg: SipMsg) -> tuple[str, int]:
    try:
        callid, cseq = msg.call_id, msg.cseq.number
    except SipParseError:
        raise RegError("Message parse error")
    if len(callid) > 255:
        raise RegError("Callid too long")
    return callid, cseq


def _parse_request(ctx: MsgContext, p: RegParams, use_domain: bool, flags: int,
                   uri: str | None, q_override: int | None) -> Request:
    msg = ctx.msg
    hdr_expires = _expires_header(msg)
    # (the test _xavp_cfg starts with, made here: no call when the feature is off)
    cfg = _xavp_cfg(ctx, p) if p.xavp_cfg else None
    key = _memo_key(ctx, p, flags, hdr_expires, q_override) if cfg is None else None
    known = _BINDINGS.get(key) if key is not None else None
    star = False
    contacts: list[NameAddr] = []
    if known is None:  # (a memoised Contact passed the checks below)
        star, contacts = _contacts(msg, p, hdr_expires)
    try:
        aor = aor_of(_uri_of(msg, uri), use_domain, p.case_sensitive, p.realm_prefix)
    except AorError as exc:
        raise RegError(str(exc))
    callid, cseq = _callid_cseq(msg)
    try:
        return _request(ctx, p, cfg, flags, q_override, aor, star, contacts, hdr_expires, callid,
                        cseq, known, key)
    except RegError as exc:
        exc.aor = aor
        raise


def _contacts(msg: SipMsg, p: RegParams, hdr_expires: int | None) -> tuple[bool, list[NameAddr]]:
    """(star, the Contact values), checked as Kamailio checks them first."""
    try:
        contacts = msg.contacts
    except SipParseError:
        if _has_star(msg):  # the parser refuses '*' mixed with others: Kamailio's words
            if hdr_expires != 0:
                raise RegError("* used in contact and expires is not zero")
            raise RegError("* used in contact and more than 1 contact")
        raise RegError("Contact parse error")
    star = bool(contacts) and contacts[0].is_star  # the parser keeps a '*' alone
    if star and hdr_expires != 0:
        raise RegError("* used in contact and expires is not zero")
    limit = p.contact_max_size
    for na in contacts:
        if len(na.uri_text) > limit:
            raise RegError("Contact/received too long")
    return star, (contacts if len(contacts) < 2 else kamailio_order(msg, contacts))


def kamailio_order(msg: SipMsg, contacts: list[NameAddr]) -> list[NameAddr]:
    """The Contacts in the order Kamailio 5.6 applies them (run): each Contact header's
    values last to first, the headers in order. New bindings join the AOR's in that order,
    so it is the order of the 200's Contact list too ("Contact: <a>, <b>" lists b, a)."""
    keys = msg.header_keys
    key = header_key("contact")
    out: list[NameAddr] = []
    for i, k in enumerate(keys):
        if k == key:
            n = len(split_commas(msg.value_at(i), strict=False))
            out += reversed(contacts[len(out):len(out) + n])
    return out if len(out) == len(contacts) else contacts


def _request(ctx: MsgContext, p: RegParams, cfg: dict[str, Any] | None, flags: int,
             q_override: int | None, aor: str, star: bool, contacts: list[NameAddr],
             hdr_expires: int | None, callid: str, cseq: int,
             known: tuple[Binding, ...] | None, key: tuple[Any, ...] | None) -> Request:
    msg = ctx.msg
    # (the check _path starts with, made here: no call when the feature is off)
    path, path_reply, received = _path(msg, p) if p.use_path else _NO_PATH
    if received is None and p.received_avp:
        value = get_pv(ctx, p.received_avp)
        received = str(value) if value else None
    if received is not None and len(received) > p.contact_max_size:
        raise RegError("Contact/received too long")
    xavp_max = cfg.get("max_contacts") if cfg else None
    bindings: tuple[Binding, ...] = ()
    if known is not None:
        bindings = known
    elif not star:
        allow: list[int] = []  # the Allow header's method mask, read once when needed
        try:
            bindings = tuple([_binding(msg, p, cfg, na, hdr_expires, flags, q_override, allow)
                              for na in contacts])
        except RegError as exc:
            exc.late = True
            raise
        if key is not None:
            if len(_BINDINGS) >= BINDINGS_MEMO_SIZE:
                _BINDINGS.clear()
            _BINDINGS[key] = bindings
    # Request(...) made as Request._make makes it, without the call of Request.__new__
    return _tuple_new(Request, (  # type: ignore[no-any-return]
        aor, star, bindings, callid, cseq, (msg.header("user-agent") or "")[:255],
        received, path, path_reply,
        bool(path) and p.path_mode == 2 and "path" not in (t.lower() for t in msg.supported),
        _socket(ctx, p, cfg), ctx.bflags,
        int(xavp_max) if xavp_max is not None else p.max_contacts))


def _binding(msg: SipMsg, p: RegParams, cfg: dict[str, Any] | None, na: NameAddr,
             hdr_expires: int | None, flags: int, q_override: int | None,
             allow: list[int]) -> Binding:
    """Validation of one Contact (errors here are answered with the current contacts)."""
    params = na.params
    ranged = not flags & SAVE_NO_RANGE
    forced = cfg.get("expires") if cfg else None
    expires: int | None = None
    if forced is not None:
        expires = int(forced)
    else:
        text = params.get("expires")
        if text is not None:
            try:
                expires = int(str(text))
            except ValueError:
                expires = None  # Kamailio ignores a malformed expires parameter
    if expires is None:
        expires = hdr_expires
        if expires is None:
            expires = p.default_expires
            if ranged:
                expires = _ranged(expires, p.default_expires_range)
        elif ranged:
            expires = _ranged(expires, p.expires_range)
    elif ranged:
        expires = _ranged(expires, p.expires_range)
    expires = _limited(expires if expires > 0 else 0, p)
    xq = cfg.get("q") if cfg else None
    q = _q_of(na, int(xq) if xq is not None else q_override, p.default_q)
    instance = params.get("+sip.instance")
    if instance is not None:
        instance = instance.strip('"')
    reg_id = 0
    reg_text = params.get("reg-id")
    if reg_text:
        try:
            reg_id = int(reg_text)
        except ValueError:
            pass  # Kamailio stores none for a malformed reg-id
    methods_param = params.get("methods")
    if methods_param is not None:
        methods = methods_mask(methods_param.strip('"').split(","))
    else:
        if not allow:
            names = [m for v in msg.headers("allow") for m in v.split(",")]
            allow.append(methods_mask(names) if names else -1)
        methods = allow[0]
    return Binding(na.uri_text, expires, q, instance, reg_id, methods)


def _limited(expires: int, p: RegParams) -> int:
    """min_expires / max_expires (423 in min_expires_mode 1)."""
    if expires and p.min_expires and expires < p.min_expires:
        if p.min_expires_mode == 1:
            raise too_brief(p.min_expires)
        expires = p.min_expires
    if expires and p.max_expires and expires > p.max_expires:
        expires = p.max_expires
    return expires
