"""t_relay and the other functions that create or answer a transaction (request side).

Flow (see ``proxy``'s "Life of a call through it"):
* ACK: one that matches a transaction (the hop-by-hop ACK of our negative final) is absorbed;
  any other (the end-to-end ACK of a 2xx) is forwarded statelessly.
* CANCEL: one whose INVITE transaction is here is answered 200 and CANCELs the branches;
  otherwise it is forwarded statelessly.
* A retransmission of a request with a transaction gets the last reply again (absorbed).
* Otherwise a transaction is created (100 Trying for INVITE) and one branch sent per
  destination: branch 0 is the R-URI (to $du when set), then every append_branch entry; the
  branch route (t_on_branch) runs on each branch's copy and may change or drop it.
In a failure route, t_relay adds the branches to the transaction being decided (serial forking).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from kemi_core.api import (
    MsgContext,
    RouteType,
    apply_via,
    forward_to,
    received_via,
    reply_destination,
    uri_destination,
)
from kemi_core.sip import SipParseError, build_reply
from kemi_tm.actions import Action, Dest, NeedsDecision, Send, TransactionStateError
from kemi_tm.glue_state import MODULE, TmTransaction, TxGlue, req_state
from kemi_tm.keys import ServerKey, server_key

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg
    from kemi_tm.service import TmService

log = logging.getLogger("kemi.tm")

#: (proto, host, port) forced by t_relay_to_proto_addr & co.
Target = tuple[str, str, int]


# ---- entry point ------------------------------------------------------------------------
def relay(svc: TmService, ctx: MsgContext, proto: str | None = None,
          target: Target | None = None) -> int:
    """t_relay: 1 when sent, 0 when absorbed (retransmission, ACK), -1 on failure."""
    msg = ctx.msg
    if not msg.is_request:
        log.error("t_relay: the current message is a reply")
        return -1
    current = ctx.mod_state.get(MODULE)  # ReqState, made below only when needed (not for ACK)
    if current is not None and current.tx is not None and ctx.route_type & RouteType.FAILURE:
        return _serial_fork(svc, ctx, current.tx, proto, target)
    try:
        method = msg.method
        if method == "ACK":
            return _relay_ack(svc, ctx, proto, target)
        if method == "CANCEL":
            return _relay_cancel(svc, ctx, proto, target, forward_unmatched=True)
        state = req_state(ctx)
        tx = state.tx
        if tx is None:
            key = server_key(msg)
            old = svc.table.get(key)
            if old is not None:
                assert isinstance(old, TmTransaction)
                svc.perform(old, old.on_request(msg, svc.now()))
                return 0
            tx = new_transaction(svc, ctx, key)
        state.callbacks.merge_into(tx.glue.callbacks)
        tx.glue.flags = ctx.flags
    except SipParseError as exc:
        log.error("t_relay: malformed request: %s", exc.reason)
        return -1
    sent = _send_branches(svc, ctx, tx, proto, target, in_failure=False)
    if sent == 0:
        # Nothing went out: forget the transaction so the script may answer statelessly.
        svc.table.remove(tx)
        state.tx = None
        return -1
    ctx.replied = True  # the transaction answers from now on
    return 1


def new_transaction(svc: TmService, ctx: MsgContext, key: ServerKey | None = None) -> TmTransaction:
    """Create, insert and start the transaction of the current request (t_newtran); ``key``:
    its server key when the caller computed it already."""
    msg = ctx.msg
    state = req_state(ctx)
    rcv = ctx.rcv
    proto, host, port = reply_destination(msg.via, rcv, ctx.force_rport)
    reply_dest = Dest(proto, host, port, (rcv.dst_ip, rcv.dst_port))
    ov = state.overrides
    # The key comes from the received request (its headers are parsed; the copy's are not).
    tx = TmTransaction(msg.copy(), reply_dest, settings=svc.settings.timers_for(ov),
                       proxy_settings=svc.settings.proxy_for(ov),
                       key=key if key is not None else server_key(msg))
    # The key is computed: now the saved request may get ;received/;rport like what we forward,
    # so our own replies carry them too (RFC 3261 18.2.1).
    apply_via(tx.request, received_via(ctx, msg))
    tx.glue = TxGlue(rcv=rcv, created=svc.now(), flags=ctx.flags, avps=ctx.avps,
                     xavps=ctx.xavps, force_rport=ctx.force_rport)
    tx.glue.overrides = ov
    svc.table.insert(tx)
    svc.stats.incr("uas")
    state.tx = tx
    svc.perform(tx, tx.start(svc.now()))
    return tx


# ---- ACK and CANCEL -----------------------------------------------------------------------
def _stateless(ctx: MsgContext, proto: str | None, target: Target | None) -> int:
    if target is not None:
        uri = f"sip:{target[1]}:{target[2]};transport={target[0]}"
    else:
        uri = ctx.dst_uri or ctx.msg.ruri
        if proto:
            uri = _with_transport(uri, proto)
    return forward_to(ctx, uri)


def _with_transport(uri: str, proto: str) -> str:
    from kemi_core.sip import parse_uri

    try:
        parsed = parse_uri(uri)
    except (SipParseError, ValueError):
        return uri
    params = dict(parsed.params)
    params["transport"] = proto.lower()
    return str(parsed.with_(params=params))


def _relay_ack(svc: TmService, ctx: MsgContext, proto: str | None, target: Target | None) -> int:
    tx = svc.table.lookup_request(ctx.msg)
    if tx is not None:
        assert isinstance(tx, TmTransaction)
        actions = tx.on_request(ctx.msg, svc.now())
        if not actions or not any(type(a).__name__ == "PassUp" for a in actions):
            svc.perform(tx, actions)
            return 0  # the hop-by-hop ACK of our negative final: absorbed
    return _stateless(ctx, proto, target)  # end to end (2xx): routed like any request


def _relay_cancel(svc: TmService, ctx: MsgContext, proto: str | None, target: Target | None,
                  forward_unmatched: bool) -> int:
    """CANCEL of an INVITE we hold: 200 here, CANCEL on every pending branch (their 487 goes
    up through the transaction). 1 done, -2 not matched (when not forwarded)."""
    msg = ctx.msg
    inv = svc.table.lookup_cancel_target(msg)
    if inv is None:
        return _stateless(ctx, proto, target) if forward_unmatched else -2
    assert isinstance(inv, TmTransaction)
    try:
        data = build_reply(msg, 200, "canceling", to_tag=inv.to_tag)
    except SipParseError:
        return -1
    svc.core.send_reply(ctx, data)
    svc.perform(inv, inv.cancel_all(svc.now()))
    return 1


# ---- branches -----------------------------------------------------------------------------
def _destinations(ctx: MsgContext) -> list[tuple[str, str | None, str | None, int]]:
    """(R-URI, $du, Path vector, branch flags) of branch 0 and of every appended branch."""
    out: list[tuple[str, str | None, str | None, int]] = [
        (ctx.msg.ruri, ctx.dst_uri, ctx.extra.get("path_vec"), ctx.bflags)]
    out += [(b.uri, b.dst_uri, b.path, b.flags) for b in ctx.branches]
    return out


def _add_path(breq: SipMsg, path: str) -> None:
    """The Path a contact registered through (RFC 3327, set by registrar's lookup) becomes the
    branch's Route: above the request's own Route headers, else after its last Via."""
    if not breq.add_header_before("route", "Route", path):
        breq.add_header_after_last("via", "Route", path)


def _send_branches(svc: TmService, ctx: MsgContext, tx: TmTransaction, proto: str | None,
                   target: Target | None, in_failure: bool) -> int:
    """Add one branch per destination, then send them all (so a branch that fails at once
    cannot end the step before the others exist). Returns how many went out."""
    now = svc.now()
    pending: list[tuple[int, list[Action]]] = []
    msg = ctx.msg
    # ;received/;rport for the copies, computed once from the request (whose Via is parsed);
    # None in a failure route, whose request has them already.
    via = received_via(ctx, msg)
    name = tx.glue.callbacks.branch
    for index, (ruri, du, path, bflags) in enumerate(_destinations(ctx)):
        breq = msg.copy()
        if ruri != breq.ruri:
            breq.set_ruri(ruri)
        apply_via(breq, via)
        if path:
            _add_path(breq, path)
        if name is not None:
            bctx = _branch_context(ctx, breq, du, tx, len(tx.branches))
            bctx.bflags = bflags
            svc.run_callback(name, bctx)
            if bctx.dropped:
                log.debug("t_relay: branch %d dropped by branch route %s", index, name)
                continue
            breq, du, bflags = bctx.msg, bctx.dst_uri, bctx.bflags
        dest = _dest_for(du or breq.ruri, proto, target)
        if dest is None:
            continue
        try:
            # breq is this branch's own copy: the client transaction takes it over
            pending.append(tx.add_branch(breq, dest, now, sent_by=_sent_by(svc, dest.proto),
                                         owned=True))
            tx.glue.branch_flags[pending[-1][0]] = bflags
        except TransactionStateError as exc:
            log.error("t_relay: cannot add a branch: %s", exc)
            break
    sent = 0
    failed: list[Action] = []
    for index, actions in pending:
        ok = True
        for a in actions:
            if isinstance(a, Send):
                ok = svc.send(a) and ok
        if ok:
            sent += 1
        else:
            log.error("t_relay: sending branch %d to %s:%d failed", index,
                      tx.branches[index].client.dest.host, tx.branches[index].client.dest.port)
            failed += tx.branch_send_failed(index, now)
    if sent == 0 and not in_failure:
        failed = [a for a in failed if not isinstance(a, NeedsDecision)]
    svc.perform(tx, failed)
    return sent


def _sent_by(svc: TmService, proto: str) -> str:
    host, port = svc.core.local_address(proto)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _branch_context(ctx: MsgContext, breq: SipMsg, du: str | None, tx: TmTransaction,
                    index: int) -> MsgContext:
    bctx = MsgContext(msg=breq, rcv=ctx.rcv, core=ctx.core, route_type=RouteType.BRANCH,
                      dst_uri=du, flags=ctx.flags, avps=ctx.avps, xavps=ctx.xavps,
                      force_rport=ctx.force_rport, send_socket=ctx.send_socket,
                      orig_ruri=ctx.orig_ruri, extra=dict(ctx.extra))
    state = req_state(bctx)
    state.tx, state.branch = tx, index
    return bctx


def _dest_for(uri: str, proto: str | None, target: Target | None) -> Dest | None:
    """Where a branch goes: ``target`` when forced, else its $du or R-URI (``uri``)."""
    if target is not None:
        return Dest(target[0].lower(), target[1], target[2])
    if proto:
        uri = _with_transport(uri, proto)
    try:
        dest = _uri_dest(uri)
    except (SipParseError, ValueError) as exc:
        log.error("t_relay: bad destination %r: %s", uri, exc)
        return None
    if dest is None:
        log.error("t_relay: cannot resolve the destination %r", uri)
    return dest


@functools.lru_cache(maxsize=256)
def _uri_dest(uri: str) -> Dest | None:
    """The Dest of a next-hop URI text (Dest is frozen: one object serves every branch to it).
    Scripts send to a handful of $du / R-URI values, each parsed and resolved once here (names
    are resolved once per process anyway: destinations.resolve_host caches them)."""
    found = uri_destination(uri)
    return Dest(*found) if found is not None else None


def _serial_fork(svc: TmService, ctx: MsgContext, tx: TmTransaction, proto: str | None,
                 target: Target | None) -> int:
    """t_relay in a failure route: a new serial step on the same transaction."""
    state = req_state(ctx)
    state.callbacks.merge_into(tx.glue.callbacks)
    tx.glue.flags = ctx.flags
    tx.settings = svc.settings.timers_for(tx.glue.overrides)
    sent = _send_branches(svc, ctx, tx, proto, target, in_failure=True)
    return 1 if sent else -1


# ---- stateful replies -------------------------------------------------------------------
def t_reply(svc: TmService, ctx: MsgContext, code: int, reason: str) -> int:
    """Reply statefully; in a request route the transaction is created when there is none."""
    msg = ctx.msg
    if not msg.is_request:
        log.error("t_reply: the current message is a reply")
        return -1
    if msg.method == "ACK":
        log.error("t_reply: an ACK gets no reply")
        return -1
    if not 100 <= code <= 699:
        log.error("t_reply: invalid code %d", code)
        return -1
    state = req_state(ctx)
    tx = state.tx
    try:
        if tx is None:
            if not ctx.route_type & RouteType.REQUEST:
                log.error("t_reply: no transaction for this message")
                return -1
            old = svc.table.lookup_request(msg)
            if old is not None:
                assert isinstance(old, TmTransaction)
                svc.perform(old, old.on_request(msg, svc.now()))
                return 0
            tx = new_transaction(svc, ctx)
        headers = [_split_header(h) for h in ctx.extra.get("reply_headers", ())]
        body, ctype = ctx.extra.get("reply_body", (b"", None))
        actions = tx.reply(code, reason, svc.now(), headers=headers, body=body,
                           content_type=ctype)
    except TransactionStateError as exc:
        log.error("t_reply: %s", exc)
        return -1
    except SipParseError as exc:
        log.error("t_reply: malformed request: %s", exc.reason)
        return -1
    svc.perform(tx, actions)
    ctx.replied = True
    return 1


def _split_header(line: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(line, tuple):
        return line
    name, _, value = line.strip().partition(":")
    return name.strip(), value.strip()


def relay_cancel(svc: TmService, ctx: MsgContext) -> int:
    """t_relay_cancel: 0 when the CANCEL matched and was handled, 1 when it matched nothing."""
    if ctx.msg.method != "CANCEL":
        return 1
    ret = _relay_cancel(svc, ctx, None, None, forward_unmatched=False)
    return 1 if ret == -2 else (0 if ret > 0 else ret)
