"""loose_route compiled for the usual in-dialog request (kemi_core/sip/_fast.c, section "rr's
usual loose_route"): one Route line naming us, its entry removed, without a Python frame.
``loose.loose_route`` stays the reference and runs every other request (kemi_rr's
test_rr_loose_fast.py runs both on the same requests). The pure form itself when _fast is not
built or KEMI_SIP_PURE is set."""

from __future__ import annotations

from collections.abc import Callable

from kemi_core.sip import loose_router
from kemi_rr import settings, uris
from kemi_rr.state import RrState


def compiled_loose_route(pure: Callable[..., int], nargs: int) -> Callable[..., int]:
    """``pure`` (ki_loose_route: nargs 1, ki_loose_route_mode: nargs 2) with its usual case
    compiled."""
    if loose_router is None:
        return pure
    found: Callable[..., int] = loose_router((pure, nargs, RrState, uris._OWN,
                                              uris._own_names, vars(settings)))
    return found
