"""tmx.so: Kamailio's tm extensions, on top of kemi_tm (``core.require("tm", TmService)``).

Route-type tests, canceling branches from an onreply route, acting on a transaction found by
Call-ID and CSeq, and t_precheck_trans. The $T_* variables are registered by tm itself.
t_suspend / t_continue / t_reuse_branch are not offered: kemi has no transaction suspension.
"""

from __future__ import annotations

import logging

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    RouteType,
    export,
    hookimpl,
)
from kemi_core.sip import SipParseError
from kemi_tm.service import TmService

log = logging.getLogger("kemi.tmx")

MODULE = "tmx"


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "t_precheck_trans", t_precheck_trans, ""),
        export(MODULE, "t_is_request_route", t_is_request_route, ""),
        export(MODULE, "t_is_branch_route", t_is_branch_route, ""),
        export(MODULE, "t_is_failure_route", t_is_failure_route, ""),
        export(MODULE, "t_is_reply_route", t_is_reply_route, ""),
        export(MODULE, "t_cancel_branches", t_cancel_branches, "s"),
        export(MODULE, "t_cancel_callid", t_cancel_callid, "sii"),
        export(MODULE, "t_reply_callid", t_reply_callid, "siis"),
        export(MODULE, "t_flush_flags", t_flush_flags, ""),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    for exp in exports():
        n = len(exp.params)
        ints = tuple(i for i, k in enumerate(exp.params) if k.value == "int")
        core.add_cfg_function(CfgFunction(MODULE, exp.name, exp.func, n, n, ints))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    if core.service("tm", TmService) is None:
        raise ModuleError("tmx needs the tm module: loadmodule \"tm.so\" before \"tmx.so\"")


def _tm(ctx: MsgContext) -> TmService:
    return ctx.core.require("tm", TmService)


# ---- route types -----------------------------------------------------------------------
def t_is_request_route(ctx: MsgContext) -> int:
    return 1 if ctx.route_type & RouteType.REQUEST else -1


def t_is_branch_route(ctx: MsgContext) -> int:
    return 1 if ctx.route_type & RouteType.BRANCH else -1


def t_is_failure_route(ctx: MsgContext) -> int:
    return 1 if ctx.route_type & RouteType.FAILURE else -1


def t_is_reply_route(ctx: MsgContext) -> int:
    """True in onreply routes (tm's) and in the core reply route."""
    return 1 if ctx.route_type & (RouteType.TM_ONREPLY | RouteType.CORE_ONREPLY) else -1


# ---- transactions --------------------------------------------------------------------------
def t_precheck_trans(ctx: MsgContext) -> int:
    """True when this request is a retransmission of one whose transaction exists.

    Kamailio checks a shared table of requests being processed by other processes. Here a
    retransmission from the same source reaches the same worker (SO_REUSEPORT hashes the
    addresses) and a worker routes one message at a time, so the worker's own table answers.
    """
    msg = ctx.msg
    if not msg.is_request or msg.method in ("ACK", "CANCEL"):
        return -1
    try:
        return 1 if _tm(ctx).table.lookup_request(msg) is not None else -1
    except SipParseError:
        return -1


def t_cancel_branches(ctx: MsgContext, which: str) -> int:
    """In an onreply route: CANCEL "all" pending branches, the "others" or "this" one."""
    tm = _tm(ctx)
    state = ctx.mod_state.get("tm")
    tx = state.tx if state is not None else None
    if state is None or tx is None or not ctx.route_type & RouteType.TM_ONREPLY:
        log.error("t_cancel_branches: only in an onreply route of a transaction")
        return -1
    if which not in ("all", "others", "this"):
        log.error("t_cancel_branches: unknown mode %r", which)
        return -1
    now = tm.now()
    current = state.branch
    for b in tx.branches:
        if not b.pending:
            continue
        if (which == "others" and b.index == current) or (which == "this" and b.index != current):
            continue
        tx.cancel_branch(b.index, now)
        tm.done(tx)
    return 1


def _find(ctx: MsgContext, callid: str, cseq: int, method: str | None):  # type: ignore[no-untyped-def]
    for tx in _tm(ctx).table.transactions():
        req = tx.request
        try:
            if req.call_id == callid and req.cseq.number == cseq and (
                    method is None or tx.method == method):
                return tx
        except SipParseError:
            continue
    return None


def t_cancel_callid(ctx: MsgContext, callid: str, cseq: int, flags: int) -> int:
    """CANCEL the INVITE transaction with this Call-ID and CSeq number (flags: message flags to
    set on it)."""
    tx = _find(ctx, callid, cseq, "INVITE")
    if tx is None:
        log.error("t_cancel_callid: no INVITE transaction %s / %d", callid, cseq)
        return -1
    tm = _tm(ctx)
    if flags:
        tx.flags |= flags
    tx.cancel_all(tm.now())
    tm.done(tx)
    return 1


def t_reply_callid(ctx: MsgContext, callid: str, cseq: int, code: int, reason: str) -> int:
    """Reply to the transaction with this Call-ID and CSeq number."""
    from kemi_tm.actions import TransactionStateError

    tx = _find(ctx, callid, cseq, None)
    if tx is None:
        log.error("t_reply_callid: no transaction %s / %d", callid, cseq)
        return -1
    tm = _tm(ctx)
    try:
        tx.reply(code, reason, tm.now())
    except TransactionStateError as exc:
        log.error("t_reply_callid: %s", exc)
        return -1
    tm.done(tx)
    return 1


def t_flush_flags(ctx: MsgContext) -> int:
    """Store the message's current flags on its transaction."""
    state = ctx.mod_state.get("tm")
    if state is None or state.tx is None:
        return -1
    state.tx.flags = ctx.flags
    return 1
