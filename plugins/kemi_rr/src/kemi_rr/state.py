"""Per-message rr state, kept in ``ctx.extra["rr"]`` (Kamailio keeps it in lumps and globals)."""

from __future__ import annotations

import attrs

from kemi_core.api import MsgContext

KEY = "rr"


@attrs.define(slots=True)
class RrState:
    #: URI text of each Record-Route entry we inserted, top first, without the add_rr_param params.
    own_rr: list[str] = attrs.Factory(list)
    #: The exact header values currently in the message for ``own_rr`` (to find them again).
    own_values: list[str] = attrs.Factory(list)
    #: add_rr_param() params (";name=value"), pending until record_route or already applied.
    params: list[str] = attrs.Factory(list)
    #: loose_route ran on this message.
    routed: bool = False
    #: Params (";lr;ftag=...") of the Route entry naming us, None when there was none.
    route_params: str | None = None
    #: URI of the top Route header as received, for $route_uri.
    route_uri: str | None = None

    @property
    def recorded(self) -> bool:
        return bool(self.own_rr)


def rr_state(ctx: MsgContext) -> RrState:
    st = ctx.extra.get(KEY)
    if not isinstance(st, RrState):
        st = ctx.extra[KEY] = RrState()
    return st
