"""Route processing: RFC 3261 16.4 (strict-router fix-up, our own entries) and 16.6 step 6 / 16.12
(next hop from the route set), with Kamailio 5.6's return codes.
"""

from __future__ import annotations

import functools
import logging
import re

from kemi_core.api import MsgContext
from kemi_core.sip import SipParseError, SipUri, header_key, parse_name_addr
from kemi_rr.routeset import ROUTE, RouteSet
from kemi_rr.settings import settings
from kemi_rr.state import RrState, rr_state
from kemi_rr.uris import is_own, param_value, params_text, route_params, uri_proto

log = logging.getLogger("kemi.rr")

RR_DRIVEN = 1
NOT_RR_DRIVEN = -1
RR_PRELOADED = -3  # an initial request whose preloaded Route set ended at us
_ROUTE_KEY = header_key(ROUTE)


def loose_route(ctx: MsgContext, mode: int = 0) -> int:
    """Route a request by its Route set; ``mode`` 1 skips the R-URI==myself strict check."""
    msg = ctx.msg
    st = rr_state(ctx)
    st.routed, st.route_params, st.route_uri = True, None, None
    if not msg.is_request:
        return NOT_RR_DRIVEN
    keys = msg.header_keys
    if keys.count(_ROUTE_KEY) == 1:
        done = _only_own_entry(ctx, st, msg.value_at(keys.index(_ROUTE_KEY)), mode)
        if done is not None:
            return done
    try:
        routes = RouteSet(msg)
        ruri = msg.uri
    except SipParseError as exc:
        log.error("loose_route: %s", exc.reason)
        return NOT_RR_DRIVEN
    if not routes:
        return NOT_RR_DRIVEN
    st.route_uri = routes[0].uri_text
    try:
        preloaded = msg.to.tag is None
    except SipParseError:
        preloaded = True
    core = ctx.core
    # 16.4: our own URI in the R-URI means the previous hop was a strict router. A R-URI with
    # a user part is a local target when the Route set starts with us (preloaded to us).
    if not mode & 1 and is_own(core, ruri) and not (ruri.user and is_own(core, routes[0].uri)):
        return _after_strict(ctx, st, routes, ruri)
    return _after_loose(ctx, st, routes, preloaded)


def _only_own_entry(ctx: MsgContext, st: RrState, line: str, mode: int) -> int | None:
    """The usual in-dialog request (one Route line of one entry: ours, single RR, loose; the
    R-URI not ours) routed as the general path routes it: the entry goes, the line with it
    (RouteSet.commit's one-line case). None: anything else, left to the general path."""
    if "," in line or '"' in line:
        return None
    raw = line.strip()
    if not raw:
        return None
    msg = ctx.msg
    try:
        entry = parse_name_addr(raw)
        ruri = msg.uri_shared  # (read only: no copy)
        top = entry.uri
    except SipParseError:
        return None  # (the general path logs it)
    core = ctx.core
    if top is None or not is_own(core, top) or "r2" in top.params or (
            not mode & 1 and is_own(core, ruri)) or settings(core).force_send_socket:
        return None
    try:
        preloaded = msg.to.tag is None
    except SipParseError:
        preloaded = True
    st.route_uri = entry.uri_text
    st.route_params = route_params(entry.uri_text, top)
    msg.remove_header(ROUTE)
    return RR_PRELOADED if preloaded else RR_DRIVEN


def loose_route_preloaded(ctx: MsgContext) -> int:
    """1 only when an initial request's preloaded Route set ended at us."""
    return 1 if loose_route(ctx) == RR_PRELOADED else -1


def _after_strict(ctx: MsgContext, st: RrState, routes: RouteSet, ruri: SipUri) -> int:
    st.route_params = params_text(ruri)  # the R-URI is the entry we record-routed
    last = routes.pop(len(routes) - 1)
    ctx.msg.set_ruri(last.uri_text)
    # ... then proceed as if it came so: our own top entry (the 2nd of a double RR) goes too.
    if routes and is_own(ctx.core, routes[0].uri):
        routes.pop(0)
    _next_hop(ctx, routes)
    routes.commit()
    return RR_DRIVEN


def _after_loose(ctx: MsgContext, st: RrState, routes: RouteSet, preloaded: bool) -> int:
    entry = routes[0]
    top = entry.uri
    if is_own(ctx.core, top):
        assert top is not None
        st.route_params = route_params(entry.uri_text, top)
        routes.pop(0)
        local = top
        if "r2" in top.params and routes and is_own(ctx.core, routes[0].uri):
            local = routes.pop(0).uri or top  # double RR: both entries are ours
            _force_socket(ctx, local)
        elif settings(ctx.core).force_send_socket:
            _force_socket(ctx, local)
        if not routes:
            routes.commit()
            return RR_PRELOADED if preloaded else RR_DRIVEN
    if not _next_hop(ctx, routes):
        routes.commit()
        return NOT_RR_DRIVEN
    routes.commit()
    return RR_DRIVEN


def _next_hop(ctx: MsgContext, routes: RouteSet) -> bool:
    """16.6 step 6: a loose next hop goes to $du; a strict one swaps with the R-URI."""
    if not routes:
        return True
    nxt = routes[0]
    if nxt.uri is None:
        log.error("loose_route: next hop %s is no SIP URI", nxt.uri_text)
        return False
    if "lr" in nxt.uri.params:
        ctx.dst_uri = nxt.uri_text
        return True
    routes.pop(0)
    routes.append(ctx.msg.ruri)
    ctx.msg.set_ruri(nxt.uri_text)
    return True


def _force_socket(ctx: MsgContext, uri: SipUri) -> None:
    """Send from the local socket the Route entry names (double RR / force_send_socket)."""
    port = uri.port
    proto = uri_proto(uri)
    host = uri.host.strip("[]")
    for lst in ctx.core.config.listen:
        if lst.proto == proto and host in (lst.host, lst.advertise_host) and (
                port is None or port in (lst.port, lst.advertise_port)):
            ctx.send_socket = f"{lst.proto}:{lst.host}:{lst.port}"
            return


# ---- after loose_route: what our own Route entry said -------------------------------------
@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def check_route_param(ctx: MsgContext, regex: str) -> int:
    """Whether the params of our Route entry (``;lr;ftag=..;x=y``) match ``regex``."""
    params = rr_state(ctx).route_params
    if params is None:
        return -1
    try:
        rx = _regex(regex)
    except re.error as exc:
        log.error("check_route_param: bad regex %r: %s", regex, exc)
        return -1
    return 1 if rx.search(params) else -1


def get_route_param(ctx: MsgContext, name: str) -> tuple[bool, str | None]:
    """(found, value) of a param of our Route entry."""
    return param_value(rr_state(ctx).route_params, name.lower())


def direction(ctx: MsgContext) -> str | None:
    """"downstream" (like the dialog's initial request) or "upstream"; None: no usable From."""
    found, ftag = get_route_param(ctx, "ftag")
    if not found or not ftag:
        return "downstream"  # Kamailio: without ftag the request counts as downstream
    try:
        tag = ctx.msg.from_.tag
    except SipParseError:
        return None
    return "downstream" if tag == ftag else "upstream"


def is_direction(ctx: MsgContext, dir: str) -> int:
    want = dir.strip().lower()
    if want not in ("downstream", "upstream"):
        log.error("is_direction: unknown direction %r", dir)
        return -1
    return 1 if direction(ctx) == want else -1


def next_hop_route(ctx: MsgContext) -> int:
    """1 when a Route header is left for the next hop (after loose_route removed ours)."""
    try:
        return 1 if ctx.msg.is_request and ctx.msg.routes else -1
    except SipParseError:
        return -1
