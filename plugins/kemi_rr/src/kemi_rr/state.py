"""Per-message rr state, kept in ``ctx.extra["rr"]`` (Kamailio keeps it in lumps and globals)."""

from __future__ import annotations

from collections.abc import Sequence

from kemi_core.api import MsgContext, RouteType

KEY = "rr"
#: in a branch route's ``extra``: the copy of the state made for it (``branch_rr_state``)
BRANCH_KEY = "rr_branch"
#: RouteType.BRANCH as a plain int: ``int(route_type) & _BRANCH`` is C work, where the
#: IntFlag's own ``&`` runs enum's Python code (three frames) for every record_route
_BRANCH = int(RouteType.BRANCH)


class RrState:
    """The defaults are class attributes (as tm's ReqState): one is made for every request
    that record-routes or loose-routes, and each field is replaced, never changed in place."""

    #: URI text of each Record-Route entry record_route made for the usual branch (the one
    #: that leaves from the socket the request came in on), top first, without the
    #: add_rr_param params. Kept aside, as Kamailio's lumps: not in the message, put on each
    #: branch as it is sent (record.PerSocket).
    own_rr: Sequence[str] = ()
    #: The header values of ``own_rr`` with the add_rr_param params.
    own_values: Sequence[str] = ()
    #: How many lines the script had put above the first header when record_route ran: our
    #: Record-Route goes below them (and above those added later), as Kamailio's.
    rank = 0
    #: How many of ``params`` are inside ``own_rr`` already (record_route_preset and
    #: record_route_advertised_address put those given before them ahead of ";lr", as Kamailio).
    applied = 0
    #: add_rr_param() params (";name=value"), pending until record_route or already applied.
    params: Sequence[str] = ()
    #: loose_route ran on this message.
    routed = False
    #: Params (";lr;ftag=...") of the Route entry naming us, None when there was none.
    route_params: str | None = None
    #: URI of the top Route header as received, for $route_uri.
    route_uri: str | None = None

    @property
    def recorded(self) -> bool:
        return bool(self.own_rr)


def rr_state(ctx: MsgContext) -> RrState:
    st = ctx.extra.get(KEY)
    if st.__class__ is not RrState:
        st = ctx.extra[KEY] = RrState()
    return st  # type: ignore[no-any-return]


def branch_rr_state(ctx: MsgContext) -> RrState:
    """The rr state a function that changes it works on. In a branch route, a copy of its own
    (made on the first change): as Kamailio's lumps added in a branch route, what
    add_rr_param, record_route or remove_record_route do there goes on that branch only, not
    on the request's other branches (a branch route's context shares the request's ``extra``
    values)."""
    st = rr_state(ctx)
    extra = ctx.extra
    if not int(ctx.route_type) & _BRANCH or extra.get(BRANCH_KEY) is st:
        return st
    own = RrState()
    own.__dict__.update(st.__dict__)
    extra[KEY] = extra[BRANCH_KEY] = own
    return own
