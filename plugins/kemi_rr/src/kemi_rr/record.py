"""Record-Route insertion (RFC 3261 16.6 step 4) and the params kept on it (add_rr_param)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kemi_core.api import MsgContext
from kemi_core.sip import SipParseError, parse_uri
from kemi_rr.hdrlines import line_values, rewrite_lines
from kemi_rr.settings import RrSettings, settings
from kemi_rr.state import rr_state
from kemi_rr.uris import LISTEN_PROTO, PROTOS, hostport, uri_proto

log = logging.getLogger("kemi.rr")

MODULE = "rr"
RR = "Record-Route"

Socket = tuple[str, str, int]  # proto, host, port


def _rr_tail(ctx: MsgContext, conf: RrSettings, r2: bool) -> str | None:
    """``;r2=on;lr;ftag=...``; None when the From header cannot be parsed."""
    out = ";r2=on" if r2 else ""
    out += ";lr=on" if conf.enable_full_lr else ";lr"
    if conf.append_fromtag:
        try:
            tag = ctx.msg.from_.tag
        except SipParseError as exc:
            log.error("record_route: bad From header: %s", exc.reason)
            return None
        if tag:
            out += f";ftag={tag}"
    return out


def _user(ctx: MsgContext, conf: RrSettings) -> str:
    if not conf.add_username:
        return ""
    spec = conf.custom_user_avp
    user: object = None
    if spec:
        from kemi_core.api import get_pv

        try:
            user = get_pv(ctx, spec)
        except ValueError as exc:
            log.error("rr: bad custom_user_avp %r: %s", spec, exc)
    if not user:
        try:
            user = ctx.msg.uri.user
        except SipParseError:
            user = None
    return f"{user}@" if user else ""


def _scheme(ctx: MsgContext, conf: RrSettings) -> str:
    if conf.ignore_sips:
        return "sip"
    try:
        return "sips" if ctx.msg.uri.scheme == "sips" else "sip"
    except SipParseError:
        return "sip"


def _advertised(ctx: MsgContext, sock: Socket) -> Socket:
    proto, host, port = sock
    listen_proto = LISTEN_PROTO.get(proto, proto)
    for lst in ctx.core.config.listen:
        if lst.proto == listen_proto and lst.host == host and lst.port == port and lst.advertise_host:
            return proto, lst.advertise_host, lst.advertise_port or port
    return sock


def inbound_socket(ctx: MsgContext) -> Socket:
    return ctx.rcv.proto.lower(), ctx.rcv.dst_ip, ctx.rcv.dst_port


def outbound_socket(ctx: MsgContext) -> Socket | None:
    """The socket the request will leave from, when it is known now and is another one.

    Kamailio decides this when the request is sent; here it is decided by force_send_socket
    or by the transport of $du / the R-URI at the time record_route runs.
    """
    if ctx.send_socket:
        parts = ctx.send_socket.split(":")
        if len(parts) >= 3 and parts[0].lower() in PROTOS and parts[-1].isdigit():
            return parts[0].lower(), ":".join(parts[1:-1]).strip("[]"), int(parts[-1])
    try:
        proto = uri_proto(parse_uri(ctx.dst_uri or ctx.msg.ruri))
    except SipParseError:
        return None
    if proto == ctx.rcv.proto.lower():
        return None
    listen_proto = LISTEN_PROTO.get(proto, proto)
    for lst in ctx.core.config.listen:
        if lst.proto == listen_proto:
            return proto, lst.host, lst.port
    return None


def _double(ctx: MsgContext, conf: RrSettings) -> Socket | None:
    """The outbound socket when two Record-Route entries are due, else None."""
    mode = conf.enable_double_rr
    out = outbound_socket(ctx)
    if mode == 2:
        return out or inbound_socket(ctx)
    if mode == 1 and out is not None and out != inbound_socket(ctx):
        return out
    return None


def _entry(ctx: MsgContext, conf: RrSettings, sock: Socket, double: bool, explicit: bool,
           extra: str) -> str | None:
    proto, host, port = _advertised(ctx, sock)
    tail = _rr_tail(ctx, conf, double)
    if tail is None:
        return None
    transport = f";transport={proto}" if proto != "udp" or explicit else ""
    return (f"{_scheme(ctx, conf)}:{_user(ctx, conf)}{hostport(host, port, proto)}{transport}"
            f"{tail}{extra}")


def _norm_params(params: str) -> str:
    params = params.strip()
    return params if not params or params.startswith(";") else ";" + params


def _insert(ctx: MsgContext, uris: list[str]) -> int:
    st = rr_state(ctx)
    values = [f"<{u}{''.join(st.params)}>" for u in uris]
    for v in reversed(values):
        ctx.msg.insert_header(RR, v)  # Kamailio puts its Record-Route on top of the headers
    st.own_rr = uris
    st.own_values = values
    return 1


def _can_record(ctx: MsgContext, func: str) -> bool:
    if not ctx.msg.is_request:
        log.error("%s: not a request", func)
        return False
    if rr_state(ctx).recorded:
        log.error("%s: double attempt to record-route", func)
        return False
    return True


def record_route(ctx: MsgContext, params: str = "") -> int:
    if not _can_record(ctx, "record_route"):
        return -1
    extra = _norm_params(params)
    conf = settings(ctx.core)
    out = _double(ctx, conf)
    if out is None:
        entries = [_entry(ctx, conf, inbound_socket(ctx), False, False, extra)]
    else:  # the top entry faces the next hop, the second the previous hop
        explicit = conf.enable_double_rr == 2
        entries = [_entry(ctx, conf, out, True, explicit, extra),
                   _entry(ctx, conf, inbound_socket(ctx), True, explicit, extra)]
    if any(e is None for e in entries):
        return -1
    return _insert(ctx, [e for e in entries if e is not None])


def _preset_uri(ctx: MsgContext, conf: RrSettings, addr: str) -> str | None:
    addr = addr.strip().strip("<>")
    if not addr:
        return None
    tail = _rr_tail(ctx, conf, False)
    if tail is None:
        return None
    low = addr.lower()
    if low.startswith(("sip:", "sips:")):
        return addr + tail
    return f"{_scheme(ctx, conf)}:{_user(ctx, conf)}{addr}{tail}"


def record_route_preset(ctx: MsgContext, addr: str, addr2: str = "") -> int:
    """``addr`` goes in the top entry (outbound side), ``addr2`` in a second one (inbound)."""
    if not _can_record(ctx, "record_route_preset"):
        return -1
    conf = settings(ctx.core)
    uris = [_preset_uri(ctx, conf, a) for a in ((addr, addr2) if addr2.strip() else (addr,))]
    if any(u is None for u in uris):
        log.error("record_route_preset: empty address")
        return -1
    return _insert(ctx, [u for u in uris if u is not None])


def record_route_advertised_address(ctx: MsgContext, addr: str) -> int:
    if not _can_record(ctx, "record_route_advertised_address"):
        return -1
    addr = addr.strip().strip("<>")
    conf = settings(ctx.core)
    tail_one = _rr_tail(ctx, conf, False)
    if not addr or tail_one is None:
        return -1
    base = f"{_scheme(ctx, conf)}:{_user(ctx, conf)}{addr}"
    out = _double(ctx, conf)
    if out is None:
        return _insert(ctx, [base + tail_one])
    tail = _rr_tail(ctx, conf, True)
    explicit = conf.enable_double_rr == 2
    uris = []
    for proto in (out[0], inbound_socket(ctx)[0]):
        transport = f";transport={proto}" if proto != "udp" or explicit else ""
        uris.append(f"{base}{transport}{tail}")
    return _insert(ctx, uris)


def add_rr_param(ctx: MsgContext, param: str) -> int:
    """Add a param to our Record-Route entries, now or when record_route runs later."""
    if not ctx.msg.is_request:
        return -1
    param = _norm_params(param)
    if len(param) < 2:
        log.error("add_rr_param: empty param")
        return -1
    st = rr_state(ctx)
    st.params = [*st.params, param]
    if st.recorded:
        new_values = [f"<{u}{''.join(st.params)}>" for u in st.own_rr]
        if not _replace_own(ctx, st.own_values, [[v] for v in new_values]):
            return -1
        st.own_values = new_values
    return 1


def remove_record_route(ctx: MsgContext) -> int:
    """Take back the Record-Route entries this server added to the request (and their params)."""
    st = rr_state(ctx)
    if st.recorded:
        _replace_own(ctx, st.own_values, [[] for _ in st.own_values])
    st.own_rr = []
    st.own_values = []
    st.params = []
    return 1


def _replace_own(ctx: MsgContext, own: Sequence[str], repl: list[list[str]]) -> bool:
    lines = line_values(ctx.msg, RR)
    new: list[list[str]] = [[v] for v in lines]
    used: set[int] = set()
    for value, lines_for in zip(own, repl, strict=True):
        idx = next((i for i, v in enumerate(lines) if v == value and i not in used), None)
        if idx is None:
            log.error("rr: our Record-Route %s is no longer in the request", value)
            return False
        used.add(idx)
        new[idx] = lines_for
    if all(len(x) == 1 for x in repl):  # add_rr_param: each of our lines gets a new value,
        for idx in used:                # in its place (no line removed or added)
            ctx.msg.set_header_value(RR, new[idx][0], idx)
        return True
    rewrite_lines(ctx.msg, RR, new)
    return True
