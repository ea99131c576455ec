"""rr's pseudo-variables: $route_uri and $rdir(id|name)."""

from __future__ import annotations

from kemi_core.api import Core, MsgContext, PvError, PvValue
from kemi_core.sip import SipParseError
from kemi_rr.loose import direction
from kemi_rr.state import rr_state


def _route_uri(ctx: MsgContext) -> PvValue:
    """URI of the top Route header as received (loose_route's edits do not change it)."""
    st = rr_state(ctx)
    if st.routed:
        return st.route_uri
    try:
        routes = ctx.msg.routes if ctx.msg.is_request else []
    except SipParseError:
        return None
    return routes[0].uri_text if routes else None


def _rdir_key(arg: str) -> str:
    key = arg.strip().lower()
    if key not in ("id", "name"):
        raise PvError(f"$rdir: unknown key {arg!r} (id or name)")
    return key


def _rdir(ctx: MsgContext, key: str) -> PvValue:
    d = direction(ctx)
    if d is None:
        return None
    if key == "id":
        return 0 if d == "downstream" else 1
    return d


def register_pvs(core: Core) -> None:
    core.pv.register("route_uri", _route_uri, doc="URI of the top Route header (rr)")
    core.pv.register("rdir", _rdir, takes_arg=True, parse_arg=_rdir_key,
                    doc="request direction after loose_route: id 0/1, name downstream/upstream (rr)")
