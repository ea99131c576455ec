"""Compiled forms of plugin functions the usual native-cfg REGISTER calls, so that their call
runs no Python frame of its own (_fast.c's "calls that need no Python frame" section):
textops' is_method (``method_tester``), registrar's save (``registrar_saver``), tm's usual
relayed reply (``reply_relayer``, _fast.c's "tm's usual relayed reply"), tm's t_relay of a new
request (``request_relayer``, _fast.c's "tm's relayed new request"), maxfwd's
process_maxfwd (``maxfwd_processor``: the first call of every request route of Kamailio's
examples, in Lua, KEMI and the cfg), KSR.pv.get and is_null (``pv_reader``), the getters of
$fd, $ft and $tt (``pv_msg_getter``), tm's has_transaction (``transaction_tester``) and rr's
loose_route of the usual in-dialog request (``loose_router``), tm's t_relay of an ACK no
transaction takes (``ack_relayer``), sl's filter of the ACKs of its own replies
(``ack_absorber``), rr's record_route of the usual initial request (``record_router``) and its Record-Route
on the usual branch (``per_socket_usual``). Each takes
the Python form, which stays the reference and runs every shape but the usual one. None when
_fast is not built or KEMI_SIP_PURE is set (the plugins bind their Python forms)."""

from __future__ import annotations

from kemi_core.sip.syntax import PURE_PYTHON

try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import (
        ack_absorber,
        ack_relayer,
        loose_router,
        maxfwd_processor,
        method_tester,
        per_socket_usual,
        pv_msg_getter,
        pv_reader,
        record_router,
        registrar_saver,
        reply_relayer,
        request_relayer,
        transaction_tester,
    )
except ImportError:
    ack_absorber = ack_relayer = loose_router = maxfwd_processor = method_tester = pv_msg_getter = pv_reader = None
    per_socket_usual = record_router = registrar_saver = reply_relayer = request_relayer = None
    transaction_tester = None
