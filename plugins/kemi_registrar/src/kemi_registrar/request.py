"""What a REGISTER asks for, read once before the location record is touched.

Errors carry Kamailio's reply for them: the status, its reason phrase and the text of the
``P-Registrar-Error`` header.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from kemi_core.api import MsgContext, get_pv
from kemi_core.sip import NameAddr, SipMsg, SipParseError, split_commas
from kemi_registrar.aor import AorError, aor_of, first_uri, methods_mask
from kemi_registrar.params import RegParams

#: save() flags.
SAVE_MEMORY_ONLY, SAVE_NO_REPLY, SAVE_SINGLE, SAVE_NO_RANGE, SAVE_PREPARE_REPLY = 1, 2, 4, 8, 16
Q_UNSPECIFIED = -1


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


@attrs.frozen
class Binding:
    """One Contact of the REGISTER, with the expiry and q it gets."""

    uri: str
    expires: int  # seconds from now; 0 removes the binding
    q: int
    instance: str | None
    reg_id: int
    methods: int


@attrs.frozen
class Request:
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


def _uri_of(ctx: MsgContext, uri: str | None) -> str:
    if uri:
        return uri
    msg = ctx.msg
    try:
        return msg.to.uri_text
    except SipParseError:
        raise RegError("To header not found")


def _expires_header(ctx: MsgContext) -> int | None:
    try:
        return ctx.msg.expires
    except (SipParseError, ValueError):
        return None  # a malformed Expires is ignored, as Kamailio does


def _xavp(ctx: MsgContext, p: RegParams, name: str) -> Any:
    if not p.xavp_cfg:
        return None
    items = ctx.xavps.get(p.xavp_cfg)
    return items[0].get(name) if items else None


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


def _socket(ctx: MsgContext, p: RegParams) -> str:
    forced = _xavp(ctx, p, "socket")
    if forced:
        return str(forced)
    if p.sock_flag >= 0 and ctx.flags & (1 << p.sock_flag) and p.sock_hdr_name:
        value = ctx.msg.header(p.sock_hdr_name)
        if value:
            return value.strip()
    rcv = ctx.rcv
    host = f"[{rcv.dst_ip}]" if ":" in rcv.dst_ip else rcv.dst_ip
    return f"{rcv.proto}:{host}:{rcv.dst_port}"


def _path(ctx: MsgContext, p: RegParams) -> tuple[str | None, str | None, str | None]:
    """(path to store, Path for the reply, received taken from the first Path URI)."""
    if not p.use_path:
        return None, None, None
    values = [v.strip() for name, v in ctx.msg.iter_headers()
              if name.lower() == "path" and v.strip()]
    if not values:
        return None, None, None
    vector = ",".join(values)
    supported = "path" in (t.lower() for t in ctx.msg.supported)
    echo = vector if p.path_mode == 2 or (p.path_mode == 1 and supported) else None
    received = None
    if p.path_use_received:
        from kemi_core.sip import parse_uri

        try:
            received = parse_uri(first_uri(vector)).params.get("received")
        except SipParseError:
            raise RegError("Path parse error")
    return vector, echo, received


def _has_star(msg: SipMsg) -> bool:
    return any(part.strip() == "*" for value in msg.headers("contact")
               for part in split_commas(value, strict=False))


def parse_request(ctx: MsgContext, p: RegParams, use_domain: bool, flags: int,
                  uri: str | None, q_override: int | None) -> Request:
    """Everything save() needs from the REGISTER (RegError when it must be refused)."""
    msg = ctx.msg
    hdr_expires = _expires_header(ctx)
    try:
        contacts = msg.contacts
    except SipParseError:
        if _has_star(msg):  # the parser refuses '*' mixed with others: Kamailio's words
            if hdr_expires != 0:
                raise RegError("* used in contact and expires is not zero")
            raise RegError("* used in contact and more than 1 contact")
        raise RegError("Contact parse error")
    star = any(na.is_star for na in contacts)
    if star and hdr_expires != 0:
        raise RegError("* used in contact and expires is not zero")
    for na in contacts:
        if len(na.uri_text) > p.contact_max_size:
            raise RegError("Contact/received too long")
    try:
        aor = aor_of(_uri_of(ctx, uri), use_domain, p.case_sensitive, p.realm_prefix)
    except AorError as exc:
        raise RegError(str(exc))
    try:
        callid, cseq = msg.call_id, msg.cseq.number
    except SipParseError:
        raise RegError("Message parse error")
    if len(callid) > 255:
        raise RegError("Callid too long")
    try:
        return _request(ctx, p, flags, q_override, aor, star, contacts, hdr_expires, callid, cseq)
    except RegError as exc:
        exc.aor = aor
        raise


def _request(ctx: MsgContext, p: RegParams, flags: int, q_override: int | None, aor: str,
             star: bool, contacts: list[NameAddr], hdr_expires: int | None, callid: str,
             cseq: int) -> Request:
    msg = ctx.msg
    path, path_reply, path_received = _path(ctx, p)
    received = path_received
    if received is None and p.received_avp:
        value = get_pv(ctx, p.received_avp)
        received = str(value) if value else None
    if received is not None and len(received) > p.contact_max_size:
        raise RegError("Contact/received too long")
    xavp_max = _xavp(ctx, p, "max_contacts")
    try:
        bindings = () if star else tuple(
            _binding(ctx, p, na, hdr_expires, flags, q_override) for na in contacts)
    except RegError as exc:
        exc.late = True
        raise
    req = Request(
        aor=aor, star=star, bindings=bindings,
        callid=callid, cseq=cseq, user_agent=(msg.header("user-agent") or "")[:255],
        received=received, path=path, path_reply=path_reply,
        path_unsupported=bool(path) and p.path_mode == 2
        and "path" not in (t.lower() for t in msg.supported), socket=_socket(ctx, p),
        cflags=ctx.bflags, max_contacts=int(xavp_max) if xavp_max is not None else p.max_contacts)
    return req


def _binding(ctx: MsgContext, p: RegParams, na: NameAddr, hdr_expires: int | None, flags: int,
             q_override: int | None) -> Binding:
    """Validation of one Contact (errors here are answered with the current contacts)."""
    params = na.params
    forced = _xavp(ctx, p, "expires")
    expires: int | None = None
    if forced is not None:
        expires = int(forced)
    elif params.get("expires") is not None:
        try:
            expires = int(str(params["expires"]))
        except ValueError:
            expires = None  # Kamailio ignores a malformed expires parameter
    if expires is None:
        expires = hdr_expires
        if expires is None:
            expires = p.default_expires
            if not flags & SAVE_NO_RANGE:
                expires = _ranged(expires, p.default_expires_range)
        elif not flags & SAVE_NO_RANGE:
            expires = _ranged(expires, p.expires_range)
    elif not flags & SAVE_NO_RANGE:
        expires = _ranged(expires, p.expires_range)
    expires = _limited(max(expires, 0), p)
    xq = _xavp(ctx, p, "q")
    q = _q_of(na, int(xq) if xq is not None else q_override, p.default_q)
    instance = params.get("+sip.instance")
    if instance is not None:
        instance = instance.strip('"')
    try:
        reg_id = int(str(params.get("reg-id") or 0))
    except ValueError:
        reg_id = 0  # Kamailio stores none for a malformed reg-id
    methods_param = params.get("methods")
    if methods_param is not None:
        methods = methods_mask(methods_param.strip('"').split(","))
    else:
        allow = [m for v in ctx.msg.headers("allow") for m in v.split(",")]
        methods = methods_mask(allow) if allow else -1
    return Binding(uri=na.uri_text, expires=expires, q=q, instance=instance, reg_id=reg_id,
                   methods=methods)


def _limited(expires: int, p: RegParams) -> int:
    """min_expires / max_expires (423 in min_expires_mode 1)."""
    if expires and p.min_expires and expires < p.min_expires:
        if p.min_expires_mode == 1:
            raise too_brief(p.min_expires)
        expires = p.min_expires
    if expires and p.max_expires and expires > p.max_expires:
        expires = p.max_expires
    return expires
