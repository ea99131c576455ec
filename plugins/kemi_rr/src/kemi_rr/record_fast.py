"""record_route compiled for the usual initial request (kemi_core/sip/_fast.c, section "rr's
usual record_route"): our entry kept with its send-time edit, without a Python frame.
``record.record_route`` stays the reference and runs every other request (kemi_rr's
test_rr_record_fast.py runs both on the same requests). The pure form itself when _fast is not
built or KEMI_SIP_PURE is set."""

from __future__ import annotations

import functools
from collections.abc import Callable

from kemi_core.api import SOCKET_EDIT, MsgContext
from kemi_core.sip import record_router
from kemi_rr import settings
from kemi_rr.record import PerSocket, _entries
from kemi_rr.state import _BRANCH, RrState


def compiled_record_route(pure: Callable[[MsgContext], int]) -> Callable[[MsgContext], int]:
    """``pure`` (ki_record_route) with its usual case compiled."""
    if record_router is None:
        return pure
    found: Callable[[MsgContext], int] = record_router((
        pure, RrState, PerSocket, _entries, functools.partial, vars(settings), SOCKET_EDIT,
        _BRANCH))
    return found
