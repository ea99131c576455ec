"""Record-Route insertion (RFC 3261 16.6 step 4) and the params kept on it (add_rr_param).

As Kamailio's lumps, the entries are kept aside (rr's state) and put on each branch as it is
sent (``PerSocket``, the request's ``SocketEdit``): one entry, or two (;r2=on) when the branch
leaves from another socket than the request came in on (enable_double_rr)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import attrs

from kemi_core.api import SOCKET_EDIT, Core, MsgContext, default_local
from kemi_core.sip import SipMsg, SipParseError, per_socket_usual
from kemi_rr.settings import RrSettings, settings
from kemi_rr.state import RrState, branch_rr_state, rr_state
from kemi_rr.uris import LISTEN_PROTO, PROTOS, hostport

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
        return "sips" if ctx.msg.uri_shared.scheme == "sips" else "sip"
    except SipParseError:
        return "sip"


def _advertised(core: Core, sock: Socket) -> Socket:
    proto, host, port = sock
    listen_proto = LISTEN_PROTO.get(proto, proto)
    for lst in core.config.listen:
        if lst.proto == listen_proto and lst.host == host and lst.port == port and lst.advertise_host:
            return proto, lst.advertise_host, lst.advertise_port or port
    return sock


def inbound_socket(ctx: MsgContext) -> Socket:
    return ctx.rcv.proto.lower(), ctx.rcv.dst_ip, ctx.rcv.dst_port


def forced_socket(send_socket: str | None) -> Socket | None:
    """force_send_socket's "proto:ip:port" as a socket; None when unset or not one."""
    if send_socket:
        parts = send_socket.split(":")
        if len(parts) >= 3 and parts[0].lower() in PROTOS and parts[-1].isdigit():
            return parts[0].lower(), ":".join(parts[1:-1]).strip("[]"), int(parts[-1])
    return None


def leaves_from(core: Core, inbound: Socket, proto: str, forced: str | None,
                local: tuple[str, int] | None = None) -> Socket | None:
    """The socket a request that came in on ``inbound`` leaves from over ``proto``, as
    Kamailio picks it (learnt by running it): the forced one; the one its sender chose
    (``local``: forwarding's ``send_local``, which knows the destination); else, over UDP,
    the UDP socket it came in on, or the transport's default socket (``default_local``:
    over TCP that one whichever TCP socket it came in on). None: the transport has no
    listen."""
    sock = forced_socket(forced)
    if sock is not None:
        return sock
    if local is not None:
        return proto, local[0], local[1]
    if proto == "udp" == inbound[0]:
        return inbound
    found = default_local(core, proto, ":" in inbound[1])
    return None if found is None else (proto, found[0], found[1])


def outbound_entry(mode: int, inbound: Socket, out: Socket | None) -> Socket | None:
    """The socket of the outbound (top) entry when two entries are due, else None:
    enable_double_rr 1 when the request leaves from another socket than it came in on
    (Kamailio's lumps conditional on different realms), 2 always, 0 never."""
    if mode == 2:
        return out or inbound
    if mode == 1 and out is not None and out != inbound:
        return out
    return None


def _transport(proto: str, explicit: bool) -> str:
    return f";transport={proto}" if proto != "udp" or explicit else ""


def _entry(core: Core, head: str, sock: Socket, tail: str, explicit: bool, extra: str) -> str:
    """One Record-Route URI: ``head`` (scheme:user@), the socket as advertised, the tail."""
    proto, host, port = _advertised(core, sock)
    return f"{head}{hostport(host, port, proto)}{_transport(proto, explicit)}{tail}{extra}"


#: the Record-Route URIs (top first, without add_rr_param's params) of a request that leaves
#: with this outbound entry (``outbound_entry``; None: one entry)
Entries = Callable[[Socket | None], list[str]]


@attrs.define(slots=True, eq=False)
class PerSocket:
    """record_route's ``SocketEdit``: the entries go on each branch as it is sent, decided
    from the socket it leaves from. As Kamailio's Record-Route lumps, they are not in the
    message the script reads (is_present_hf, $hdr, onsend_route, branch and failure routes),
    only in what is sent."""

    core: Core
    #: enable_double_rr
    mode: int
    #: the socket the request came in on
    inbound: Socket
    entries: Entries
    state: RrState

    def __call__(self, msg: SipMsg, proto: str, forced: str | None,
                 local: tuple[str, int] | None = None) -> SipMsg | None:
        if per_socket_usual is not None:  # the usual branch compiled (its reference: below)
            made = per_socket_usual(self, msg, proto, forced, local)
            if made is not NotImplemented:
                return made  # type: ignore[no-any-return]
        return self._call_py(msg, proto, forced, local)

    def _call_py(self, msg: SipMsg, proto: str, forced: str | None,
                 local: tuple[str, int] | None = None) -> SipMsg | None:
        st = self.state
        if not st.own_rr:  # remove_record_route took them back
            return None
        inbound = self.inbound
        mode = self.mode
        if mode == 0 or (mode == 1 and forced is None and proto == inbound[0] == "udp" and (
                local is None or (local[0] == inbound[1] and local[1] == inbound[2]))):
            values = st.own_values  # the usual branch: one entry, made at record_route
        else:
            out = outbound_entry(mode, inbound,
                                 leaves_from(self.core, inbound, proto, forced, local))
            params = "".join(st.params[st.applied:])
            values = [f"<{u}{params}>" for u in self.entries(out)]
        copy = msg.copy()
        rank = st.rank
        for k, v in enumerate(values):
            # Kamailio puts its Record-Route above the first header, after the lines put
            # there before record_route ran
            copy.insert_header_at_front(RR, v, rank + k)
        return copy


def _norm_params(params: str) -> str:
    params = params.strip()
    return params if not params or params.startswith(";") else ";" + params


def _keep(ctx: MsgContext, mode: int, inbound: Socket, uris: list[str],
          entries: Entries) -> int:
    """Keep our entries (``uris``: the usual branch's) for the send step (``PerSocket``): the
    message is left as it is."""
    st = branch_rr_state(ctx)
    st.own_rr = uris
    st.rank = ctx.msg.front_count()
    params = st.params[st.applied:]
    st.own_values = [f"<{u}{''.join(params)}>" for u in uris] if params else [
        f"<{u}>" for u in uris]
    ctx.extra[SOCKET_EDIT] = PerSocket(ctx.core, mode, inbound, entries, st)
    return 1


def _can_record(ctx: MsgContext, func: str) -> bool:
    if not ctx.msg.is_request:
        log.error("%s: not a request", func)
        return False
    if rr_state(ctx).recorded:
        log.error("%s: double attempt to record-route", func)
        return False
    return True


def _head(ctx: MsgContext, conf: RrSettings) -> str:
    # (_user called only when it adds one: record_route runs for every initial INVITE)
    return f"{_scheme(ctx, conf)}:{_user(ctx, conf)}" if conf.add_username else (
        f"{_scheme(ctx, conf)}:")


def _record(ctx: MsgContext, mode: int, inbound: Socket, entries: Entries) -> int:
    """Keep the entries of the usual branch (one, or two in mode 2) and the way to make them
    for any socket (``PerSocket``)."""
    return _keep(ctx, mode, inbound, entries(inbound if mode == 2 else None), entries)


def record_route(ctx: MsgContext, params: str = "") -> int:
    if not _can_record(ctx, "record_route"):
        return -1
    extra = _norm_params(params) if params else ""
    conf = settings(ctx.core)
    tail = _rr_tail(ctx, conf, False)
    if tail is None:
        return -1
    core, head, inbound = ctx.core, _head(ctx, conf), inbound_socket(ctx)
    mode = conf.enable_double_rr
    entries = functools.partial(_entries, core, head, inbound, tail, mode == 2, extra)
    # _record written out: a frame less for every initial INVITE
    return _keep(ctx, mode, inbound, entries(inbound if mode == 2 else None), entries)


def _entries(core: Core, head: str, inbound: Socket, tail: str, explicit: bool, extra: str,
             out: Socket | None) -> list[str]:
    """record_route's ``Entries`` (bound by functools.partial up to ``out``)."""
    if out is None:
        return [_entry(core, head, inbound, tail, False, extra)]
    # the top entry faces the next hop, the second the previous hop
    return [_entry(core, head, out, ";r2=on" + tail, explicit, extra),
            _entry(core, head, inbound, ";r2=on" + tail, explicit, extra)]


def _preset_tail(ctx: MsgContext, conf: RrSettings) -> str | None:
    """A preset entry's params: Kamailio 5.6 writes ";ftag=...", the add_rr_param params given
    so far, then ";lr" (record_route's own entries: ";lr;ftag=..." then the params)."""
    lr = ";lr=on" if conf.enable_full_lr else ";lr"
    tail = _rr_tail(ctx, conf, False)
    if tail is None:
        return None
    return f"{tail[len(lr):]}{''.join(rr_state(ctx).params)}{lr}"


def _preset_uri(ctx: MsgContext, conf: RrSettings, addr: str) -> str | None:
    addr = addr.strip().strip("<>")
    if not addr:
        return None
    tail = _preset_tail(ctx, conf)
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
    kept = [u for u in uris if u is not None]
    st = branch_rr_state(ctx)
    st.applied = len(st.params)
    return _keep(ctx, conf.enable_double_rr, inbound_socket(ctx), kept, lambda _out: kept)


def record_route_advertised_address(ctx: MsgContext, addr: str) -> int:
    if not _can_record(ctx, "record_route_advertised_address"):
        return -1
    addr = addr.strip().strip("<>")
    conf = settings(ctx.core)
    tail = _rr_tail(ctx, conf, False)
    one = _preset_tail(ctx, conf)
    if not addr or tail is None or one is None:
        return -1
    base = f"{_head(ctx, conf)}{addr}"
    inbound = inbound_socket(ctx)
    mode = conf.enable_double_rr
    explicit = mode == 2
    st = branch_rr_state(ctx)
    before = "".join(st.params)
    st.applied = len(st.params)

    def entries(out: Socket | None) -> list[str]:
        if out is None:
            return [base + one]
        # (two entries: the params given before after the tail, as add_rr_param's later ones)
        return [f"{base}{_transport(proto, explicit)};r2=on{tail}{before}"
                for proto in (out[0], inbound[0])]

    return _record(ctx, mode, inbound, entries)


def add_rr_param(ctx: MsgContext, param: str) -> int:
    """Add a param to our Record-Route entries, now or when record_route runs later."""
    if not ctx.msg.is_request:
        return -1
    param = _norm_params(param)
    if len(param) < 2:
        log.error("add_rr_param: empty param")
        return -1
    st = branch_rr_state(ctx)
    st.params = [*st.params, param]
    if st.recorded:
        st.own_values = [f"<{u}{''.join(st.params[st.applied:])}>" for u in st.own_rr]
        _rebind(ctx, st)
    return 1


def _rebind(ctx: MsgContext, st: RrState) -> None:
    """A branch route's own copy of the state (``branch_rr_state``) is the one its branch's
    Record-Route is made from."""
    edit = ctx.extra.get(SOCKET_EDIT)
    if isinstance(edit, PerSocket) and edit.state is not st:
        ctx.extra[SOCKET_EDIT] = attrs.evolve(edit, state=st)


def remove_record_route(ctx: MsgContext) -> int:
    """Take back the Record-Route entries this server added to the request (and their params)."""
    st = branch_rr_state(ctx)
    st.own_rr = []
    st.own_values = []
    st.params = []
    st.applied = 0
    _rebind(ctx, st)
    return 1
