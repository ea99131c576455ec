"""t_relay compiled for the end-to-end ACK of a 2xx (kemi_core/sip/_fast.c, section "tm's t_relay
of an ACK that no transaction takes"): an ACK no transaction takes, forwarded statelessly over
UDP with our Via, without a Python frame. ``exports.t_relay`` stays the reference and runs every
other request (kemi_tm's test_tm_ack_fast.py runs both on the same requests). The pure form
itself when _fast is not built or KEMI_SIP_PURE is set."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from kemi_core.api import Core, MsgContext, Resolver, received_via, script_log
from kemi_core.sip import ack_relayer
from kemi_tm.transaction import TmTable

try:
    # the MD5 the stateless branch is made with (kemi_core.forwarding.via's): the same digests
    from _md5 import md5 as _md5
except ImportError:  # (a Python built without it)
    _md5 = hashlib.md5


def compiled_t_relay(pure: Callable[[MsgContext], int],
                     tm_globals: dict[str, Any]) -> Callable[[MsgContext], int]:
    """``pure`` (exports.t_relay) with the unmatched ACK's relay compiled; ``tm_globals``:
    exports' module globals, where t_relay keeps the service it found last (_last_svc)."""
    if ack_relayer is None:
        return pure
    found: Callable[[MsgContext], int] = ack_relayer((
        pure, tm_globals, TmTable, Resolver, _md5, received_via, Core.send, script_log))
    return found
