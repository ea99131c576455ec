"""KSR.tm.* (and the native cfg functions of the same names): the exports table first, then
the functions that are not the relay itself (``relay``), the branch tests and the knobs."""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import (
    CfgFunction,
    KemiExport,
    MsgContext,
    ReturnKind,
    RouteType,
    export,
    uri_target,
)
from kemi_tm import contacts, relay
from kemi_tm.ack_fast import compiled_t_relay
from kemi_tm.service import TmService
from kemi_tm.state import MODULE, NO_OVERRIDES, Overrides, ReqState, req_state
from kemi_tm.transaction import TmTransaction

if TYPE_CHECKING:
    from kemi_core.api import Core

log = logging.getLogger("kemi.tm")

INT, XVAL = ReturnKind.INT, ReturnKind.XVAL


def exports() -> list[KemiExport]:
    table: list[tuple[str, object, str, ReturnKind]] = [
        ("t_relay", _t_relay_compiled, "", INT),
        ("t_relay_to_proto", t_relay_to_proto, "s", INT),
        ("t_relay_to_proto_addr", t_relay_to_proto_addr, "ssi", INT),
        ("t_relay_to_proxy", t_relay_to_proxy, "s", INT),
        ("t_relay_to_proxy_flags", t_relay_to_proxy_flags, "si", INT),
        ("t_relay_to_flags", t_relay_to_flags, "i", INT),
        ("t_relay_cancel", t_relay_cancel, "", INT),
        ("t_on_branch", t_on_branch, "s", INT),
        ("t_on_reply", t_on_reply, "s", INT),
        ("t_on_failure", t_on_failure, "s", INT),
        ("t_on_branch_failure", t_on_branch_failure, "s", INT),
        ("t_newtran", t_newtran, "", INT),
        ("t_reply", t_reply, "is", INT),
        ("t_send_reply", t_reply, "is", INT),
        ("t_check_trans", t_check_trans, "", INT),
        ("t_lookup_request", t_lookup_request, "", INT),
        ("t_lookup_cancel", t_lookup_cancel, "", INT),
        ("t_lookup_cancel_flags", t_lookup_cancel_flags, "i", INT),
        ("t_retransmit_reply", t_retransmit_reply, "", INT),
        ("t_release", t_release, "", INT),
        ("t_clean", t_clean, "", INT),
        ("t_is_canceled", t_is_canceled, "", INT),
        ("t_is_expired", t_is_expired, "", INT),
        ("t_is_set", t_is_set, "s", INT),
        ("t_is_retr_async_reply", t_is_retr_async_reply, "", INT),
        ("t_branch_timeout", t_branch_timeout, "", INT),
        ("t_branch_replied", t_branch_replied, "", INT),
        ("t_any_timeout", t_any_timeout, "", INT),
        ("t_any_replied", t_any_replied, "", INT),
        ("t_check_status", t_check_status, "s", INT),
        ("t_grep_status", t_grep_status, "i", INT),
        ("t_get_status_code", t_get_status_code, "", XVAL),
        ("t_get_branch_index", t_get_branch_index, "", XVAL),
        ("t_drop_replies", t_drop_replies, "s", INT),
        ("t_drop_replies_all", t_drop_replies_all, "", INT),
        ("t_set_fr", t_set_fr, "ii", INT),
        ("t_set_fr_inv", t_set_fr_inv, "i", INT),
        ("t_reset_fr", t_reset_fr, "", INT),
        ("t_set_max_lifetime", t_set_max_lifetime, "ii", INT),
        ("t_reset_max_lifetime", t_reset_max_lifetime, "", INT),
        ("t_set_retr", t_set_retr, "ii", INT),
        ("t_reset_retr", t_reset_retr, "", INT),
        ("t_set_auto_inv_100", t_set_auto_inv_100, "i", INT),
        ("t_set_disable_6xx", t_set_disable_6xx, "i", INT),
        ("t_set_disable_failover", t_set_disable_failover, "i", INT),
        ("t_set_disable_internal_reply", t_accepted_flag, "i", INT),
        ("t_set_no_e2e_cancel_reason", t_accepted_flag, "i", INT),
        ("t_use_uac_headers", t_use_uac_headers, "", INT),
        ("t_save_lumps", t_save_lumps, "", INT),
        ("t_load_contacts", contacts.t_load_contacts, "", INT),
        ("t_load_contacts_mode", contacts.t_load_contacts_mode, "i", INT),
        ("t_next_contacts", contacts.t_next_contacts, "", INT),
        ("t_next_contact_flow", contacts.t_next_contact_flow, "", INT),
    ]
    out = [export(MODULE, name, func, params, ret)  # type: ignore[arg-type]
           for name, func, params, ret in table]
    from kemi_tm import uac

    out += uac.exports()
    return out


def register_cfg_functions(core: Core) -> None:
    """The native language's names: same functions, int parameters where KEMI has them."""
    for exp in exports():
        int_params = tuple(i for i, k in enumerate(exp.params) if k.value == "int")
        n = len(exp.params)
        core.add_cfg_function(CfgFunction(MODULE, exp.name, exp.func, n, n, int_params))


#: the tm service of the last lookup (one Core per process, so the lookup by name and the type
#: check run once instead of for every t_relay); a weak reference: a Core that is gone (tests
#: make many) is not kept alive by it
def _no_svc() -> TmService | None:
    return None


_last_svc: Callable[[], TmService | None] = _no_svc


def svc_of(ctx: MsgContext) -> TmService:
    global _last_svc
    svc = _last_svc()
    if svc is None or svc.core is not ctx.core:
        svc = ctx.core.require("tm", TmService)
        _last_svc = weakref.ref(svc)
    return svc


def _tx(ctx: MsgContext) -> TmTransaction | None:
    return req_state(ctx).tx


# ---- relaying ----------------------------------------------------------------------------
def t_relay(ctx: MsgContext) -> int:
    """Relay the request statefully to $du or the R-URI (and every appended branch). A CANCEL
    whose INVITE transaction is here is answered 200 and cancels its branches; any other CANCEL
    is relayed in a transaction of its own (Kamailio's default)."""
    svc = _last_svc()  # svc_of's usual answer read here: every request of a call comes this way
    if svc is None or svc.core is not ctx.core:
        svc = svc_of(ctx)
    fast = svc.relay_fast  # the compiled form (relay_fast), which runs relay.relay for the rest
    return fast(ctx) if fast is not None else relay.relay(svc, ctx)


#: t_relay as scripts and the cfg call it: an ACK no transaction takes (the end-to-end ACK of
#: a 2xx) relayed in one compiled call (kemi_tm.ack_fast), the function above for the rest
_t_relay_compiled = compiled_t_relay(t_relay, globals())


def t_relay_to_proto(ctx: MsgContext, proto: str) -> int:
    """t_relay forcing the transport (udp, tcp, tls, sctp, ws, wss)."""
    return relay.relay(svc_of(ctx), ctx, proto=proto.lower() or None)


def t_relay_to_proto_addr(ctx: MsgContext, proto: str, host: str, port: int) -> int:
    """t_relay to this address instead of $du / R-URI."""
    return relay.relay(svc_of(ctx), ctx, target=((proto or "udp").lower(), host, port or 5060))


def t_relay_to_proxy(ctx: MsgContext, proxy: str) -> int:
    """t_relay to "proto:host:port" (or a SIP URI) instead of $du / R-URI."""
    target = _parse_proxy(proxy)
    if target is None:
        log.error("t_relay_to_proxy: bad proxy address %r", proxy)
        return -1
    return relay.relay(svc_of(ctx), ctx, target=target)


def t_relay_to_proxy_flags(ctx: MsgContext, proxy: str, flags: int) -> int:
    """t_relay_to_proxy; Kamailio's flags (no 100, no auto error reply) change nothing here."""
    return t_relay_to_proxy(ctx, proxy)


def t_relay_to_flags(ctx: MsgContext, flags: int) -> int:
    """t_relay with Kamailio's flags: 0x01 no 100 Trying; the others change nothing here."""
    if flags & 0x01:
        req_state(ctx).overrides.auto_inv_100 = False
    return t_relay(ctx)


def _parse_proxy(text: str) -> relay.Target | None:
    """(proto, host, port) of "proto:host:port" or a SIP URI (the host may be a name: the
    branch waits for it to resolve)."""
    text = text.strip()
    if text.startswith(("sip:", "sips:")):
        return uri_target(text)
    parts = text.split(":")
    proto = "udp"
    if parts and parts[0].lower() in ("udp", "tcp", "tls", "sctp", "ws", "wss"):
        proto = parts.pop(0).lower()
    if not parts or not parts[0]:
        return None
    try:
        port = int(parts[1]) if len(parts) > 1 else 5060
    except ValueError:
        return None
    return proto, parts[0], port


def t_relay_cancel(ctx: MsgContext) -> int:
    """For a CANCEL: 0 when its INVITE transaction was found (200 sent, branches CANCELed), 1
    when there is none (route it on), negative on error."""
    return relay.relay_cancel(svc_of(ctx), ctx)


# ---- callbacks -----------------------------------------------------------------------------
#: the route types where t_on_* arms the transaction of the message directly
_ARMS_TX = RouteType.FAILURE | RouteType.TM_ONREPLY | RouteType.BRANCH


def _arm(ctx: MsgContext, kind: str, name: str) -> int:
    engine = ctx.core.engine
    if name and engine is not None and not engine.has_route(name):
        log.error("t_on_%s: the script defines no route %r: the callback would never run",
                  kind, name)
        return -1
    state = ctx.mod_state.get(MODULE)  # req_state written out: every relay of a call arms
    if state is None:
        state = ctx.mod_state[MODULE] = ReqState()
    value = name or None
    setattr(state.callbacks, kind, value)
    tx = state.tx
    if tx is not None and ctx.route_type & _ARMS_TX:
        setattr(tx.callbacks, kind, value)  # the transaction exists: arm it directly
    return 1


def t_on_branch(ctx: MsgContext, name: str) -> int:
    """Run route ``name`` for each branch t_relay creates (branch_route)."""
    return _arm(ctx, "branch", name)


def t_on_reply(ctx: MsgContext, name: str) -> int:
    """Run route ``name`` for each reply of the transaction (onreply_route)."""
    return _arm(ctx, "reply", name)


def t_on_failure(ctx: MsgContext, name: str) -> int:
    """Run route ``name`` when every branch failed (failure_route)."""
    return _arm(ctx, "failure", name)


def t_on_branch_failure(ctx: MsgContext, name: str) -> int:
    """Run route ``name`` for each branch that ends with a negative reply."""
    return _arm(ctx, "branch_failure", name)


# ---- transactions ------------------------------------------------------------------------
def t_newtran(ctx: MsgContext) -> int:
    """Create the transaction of this request (0 for a retransmission: absorbed)."""
    svc = svc_of(ctx)
    msg = ctx.msg
    if not msg.is_request or msg.method in ("ACK", "CANCEL"):
        log.error("t_newtran: not for %s", msg.method if msg.is_request else "a reply")
        return -1
    state = req_state(ctx)
    if state.tx is not None:
        return 1
    old = svc.table.lookup_request(msg)
    if old is not None:
        svc.absorb(old, msg)
        return 0
    svc.new_transaction(ctx)
    return 1


def t_reply(ctx: MsgContext, code: int, reason: str) -> int:
    """Send a stateful reply (creating the transaction in a request route)."""
    return svc_of(ctx).t_reply(ctx, code, reason)


def t_check_trans(ctx: MsgContext) -> int:
    """Whether the message belongs to a transaction. A retransmission is answered with the last
    reply and gets 0 (stop); a CANCEL is true when its INVITE transaction exists; an ACK of our
    negative final is absorbed (0), an ACK of a 2xx is true (relay it)."""
    msg = ctx.msg
    if not msg.is_request or not ctx.route_type & RouteType.REQUEST:
        return 1 if _tx(ctx) is not None else -1
    svc = svc_of(ctx)
    if msg.method == "CANCEL":
        return 1 if svc.table.lookup_cancel_target(msg) is not None else -1
    tx = svc.table.lookup_request(msg)
    if tx is None:
        return -1
    assert isinstance(tx, TmTransaction)
    if tx.on_request(msg, svc.clock.now()):
        return 1  # an ACK of a 2xx: end to end, relay it
    svc.done(tx)
    return 0


def t_lookup_request(ctx: MsgContext) -> int:
    """Whether a transaction exists for this request (nothing is resent)."""
    return 1 if svc_of(ctx).table.lookup_request(ctx.msg) is not None else -1


def t_lookup_cancel(ctx: MsgContext) -> int:
    """For a CANCEL: whether the INVITE transaction it refers to exists."""
    if ctx.msg.method != "CANCEL":
        return -1
    return 1 if svc_of(ctx).table.lookup_cancel_target(ctx.msg) is not None else -1


def t_lookup_cancel_flags(ctx: MsgContext, flags: int) -> int:
    """t_lookup_cancel; flag 1 (copy the INVITE's flags) is applied."""
    if ctx.msg.method != "CANCEL":
        return -1
    inv = svc_of(ctx).table.lookup_cancel_target(ctx.msg)
    if inv is None:
        return -1
    if flags & 1:
        ctx.flags |= inv.flags  # type: ignore[attr-defined]
    return 1


def t_retransmit_reply(ctx: MsgContext) -> int:
    """Send the last reply of the transaction again."""
    tx = _tx(ctx) or svc_of(ctx).table.lookup_request(ctx.msg)
    if tx is None or tx.last_reply is None:
        return -1
    svc = svc_of(ctx)
    d = tx.reply_dest
    ok = svc.core.send(d.proto, d.host, d.port, tx.last_reply, d.local)
    return 1 if ok else -1


def t_release(ctx: MsgContext) -> int:
    """Free the transaction now (only one with no branch still waiting)."""
    state = req_state(ctx)
    tx = state.tx
    if tx is None:
        return -1
    if tx.pending_branches:
        log.error("t_release: the transaction still has %d pending branches", tx.pending_branches)
        return -1
    svc_of(ctx).table.remove(tx)
    state.tx = None
    return 1


def t_clean(ctx: MsgContext) -> int:
    """Forget the transaction of the current message in this script run (it lives on)."""
    req_state(ctx).tx = None
    return 1


def t_is_canceled(ctx: MsgContext) -> int:
    tx = _tx(ctx)
    return 1 if tx is not None and tx.canceled else -1


def t_is_expired(ctx: MsgContext) -> int:
    """Whether the transaction outlived max_inv_lifetime / max_noninv_lifetime."""
    tx = _tx(ctx)
    if tx is None:
        return -1
    s = tx.settings
    life = s.max_inv_lifetime if tx.is_invite else s.max_noninv_lifetime
    return 1 if svc_of(ctx).clock.now() - tx.created > life else -1


#: t_is_set's targets -> the Callbacks field each names
_IS_SET_KINDS = {"branch_route": "branch", "failure_route": "failure",
                 "onreply_route": "reply", "branch_failure_route": "branch_failure"}


def t_is_set(ctx: MsgContext, target: str) -> int:
    """Whether "branch_route", "failure_route" or "onreply_route" is armed (on the message
    or on its transaction)."""
    kind = _IS_SET_KINDS.get(target)
    if kind is None:
        log.error("t_is_set: unknown target %r", target)
        return -1
    state = ctx.mod_state.get(MODULE)  # req_state written out, as in _arm
    if state is None:
        state = ctx.mod_state[MODULE] = ReqState()
    tx = state.tx
    if tx is not None and getattr(tx.callbacks, kind):
        return 1
    return 1 if getattr(state.callbacks, kind) else -1


def t_is_retr_async_reply(ctx: MsgContext) -> int:
    """Always false: kemi has no t_suspend, so no reply is an async-resume retransmission."""
    return -1


# ---- branch tests ------------------------------------------------------------------------
def _failed_branch(ctx: MsgContext) -> tuple[TmTransaction, int] | None:
    state = req_state(ctx)
    if state.tx is None or state.branch < 0 or state.branch >= len(state.tx.branches):
        return None
    return state.tx, state.branch


def t_branch_timeout(ctx: MsgContext) -> int:
    """In failure / branch-failure routes: the failed branch timed out."""
    found = _failed_branch(ctx)
    if found is None:
        return -1
    b = found[0].branches[found[1]]
    return 1 if b.status == 408 and b.reply is None else -1


def t_branch_replied(ctx: MsgContext) -> int:
    """In failure / branch-failure routes: the failed branch got at least one reply."""
    found = _failed_branch(ctx)
    return 1 if found is not None and found[0].branches[found[1]].replied else -1


def t_any_timeout(ctx: MsgContext) -> int:
    tx = _tx(ctx)
    return 1 if tx is not None and any(b.status == 408 and b.reply is None
                                       for b in tx.branches) else -1


def t_any_replied(ctx: MsgContext) -> int:
    tx = _tx(ctx)
    return 1 if tx is not None and tx.any_replied else -1


def status_code(ctx: MsgContext) -> int:
    """The status the tm tests look at: the reply in onreply/failure routes, else the last
    status the transaction sent (0: none)."""
    msg = ctx.msg
    if not msg.is_request:
        return msg.status
    state = req_state(ctx)
    if state.reply_code:
        return state.reply_code
    tx = state.tx
    return tx.last_status if tx is not None else 0


def t_check_status(ctx: MsgContext, regex: str) -> int:
    """Whether the status (see status_code) matches the regular expression."""
    code = status_code(ctx)
    if not code:
        return -1
    try:
        return 1 if re.search(regex, str(code)) else -1
    except re.error as exc:
        log.error("t_check_status: bad regex %r: %s", regex, exc)
        return -1


def t_grep_status(ctx: MsgContext, code: int) -> int:
    """Whether any branch got a reply with this code (a 2xx is never a local outcome, and
    its reply is not kept: ``BranchFields.reply``)."""
    tx = _tx(ctx)
    return 1 if tx is not None and any(b.status == code and (code < 300 or b.reply is not None)
                                       for b in tx.branches) else -1


def t_get_status_code(ctx: MsgContext) -> int:
    """The last status the transaction sent upstream, -1 without a transaction."""
    tx = _tx(ctx)
    return tx.last_status if tx is not None else -1


def t_get_branch_index(ctx: MsgContext) -> int:
    """Index of the branch a branch/onreply/failure route runs for, -1 elsewhere."""
    return req_state(ctx).branch


def t_drop_replies(ctx: MsgContext, mode: str) -> int:
    """In a failure route: the replies received so far are not sent upstream; when the route
    neither replies nor forks again, the caller gets a 500."""
    tx = _tx(ctx)
    if tx is None or not ctx.route_type & RouteType.FAILURE:
        return -1
    if mode in ("", "a", "l", "n"):
        tx.drop_replies = True
    return 1


def t_drop_replies_all(ctx: MsgContext) -> int:
    return t_drop_replies(ctx, "a")


# ---- knobs ---------------------------------------------------------------------------------
def _apply_timers(ctx: MsgContext) -> None:
    """Settings changed while the transaction exists (failure route): next branches use them."""
    tx = _tx(ctx)
    if tx is not None:
        tx.overrides = req_state(ctx).overrides
        tx.settings = svc_of(ctx).settings.timers_for(tx.overrides)


def t_set_fr(ctx: MsgContext, fr_inv: int, fr: int) -> int:
    """fr_inv_timer and fr_timer (ms) for this transaction; 0 keeps the default."""
    ov = req_state(ctx).overrides
    ov.fr_inv, ov.fr = fr_inv or None, fr or None
    _apply_timers(ctx)
    return 1


def t_set_fr_inv(ctx: MsgContext, fr_inv: int) -> int:
    req_state(ctx).overrides.fr_inv = fr_inv or None
    _apply_timers(ctx)
    return 1


def t_reset_fr(ctx: MsgContext) -> int:
    ov = req_state(ctx).overrides
    ov.fr_inv = ov.fr = None
    _apply_timers(ctx)
    return 1


def t_set_max_lifetime(ctx: MsgContext, inv: int, noninv: int) -> int:
    """max_inv_lifetime / max_noninv_lifetime (ms) for this transaction; 0 keeps the default."""
    ov = req_state(ctx).overrides
    ov.max_inv_lifetime, ov.max_noninv_lifetime = inv or None, noninv or None
    _apply_timers(ctx)
    return 1


def t_reset_max_lifetime(ctx: MsgContext) -> int:
    ov = req_state(ctx).overrides
    ov.max_inv_lifetime = ov.max_noninv_lifetime = None
    _apply_timers(ctx)
    return 1


def t_set_retr(ctx: MsgContext, t1: int, t2: int) -> int:
    """Retransmission intervals T1 / T2 (ms) for this transaction; 0 keeps the default."""
    ov = req_state(ctx).overrides
    ov.retr_t1, ov.retr_t2 = t1 or None, t2 or None
    _apply_timers(ctx)
    return 1


def t_reset_retr(ctx: MsgContext) -> int:
    ov = req_state(ctx).overrides
    ov.retr_t1 = ov.retr_t2 = None
    _apply_timers(ctx)
    return 1


def t_set_auto_inv_100(ctx: MsgContext, on: int) -> int:
    """Whether this INVITE's transaction answers 100 Trying itself."""
    req_state(ctx).overrides.auto_inv_100 = bool(on)
    return 1


def t_set_disable_6xx(ctx: MsgContext, on: int) -> int:
    """1: a 6xx reply does not stop serial forking for this transaction."""
    state = req_state(ctx)
    state.overrides.disable_6xx = bool(on)
    if state.tx is not None:
        state.tx.proxy_settings = svc_of(ctx).settings.proxy_for(state.overrides)
    return 1


def t_set_disable_failover(ctx: MsgContext, on: int) -> int:
    """1: the failure route is not run for this transaction."""
    state = req_state(ctx)
    state.overrides.disable_failover = bool(on)
    tx = state.tx
    if tx is not None:
        if tx.overrides is NO_OVERRIDES:  # shared by every transaction: never changed
            tx.overrides = Overrides()
        tx.overrides.disable_failover = bool(on)
    return 1


def t_accepted_flag(ctx: MsgContext, on: int) -> int:
    """Accepted with no effect: kemi never copies the caller's Reason header into downstream
    CANCELs and never sends an internal reply when t_relay fails (the script does)."""
    return 1


def t_use_uac_headers(ctx: MsgContext) -> int:
    """Already the behaviour: a CANCEL is built from the branch's request as it was sent."""
    return 1


def t_save_lumps(ctx: MsgContext) -> int:
    """Make the transaction's saved request the current message (edits made after t_newtran
    then show in failure routes and local replies)."""
    from kemi_core.api import stamp_received

    tx = _tx(ctx)
    if tx is None or not ctx.msg.is_request:
        return -1
    saved = ctx.msg.copy()
    stamp_received(ctx, saved)
    tx.request = saved
    return 1
