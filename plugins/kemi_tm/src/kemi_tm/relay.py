"""t_relay and the other functions that forward a request statefully (the request side).

Flow (see ``proxy``'s "Life of a call through it"):
* ACK: one that matches a transaction (the hop-by-hop ACK of our negative final) is absorbed;
  any other (the end-to-end ACK of a 2xx) is forwarded statelessly.
* CANCEL: one whose INVITE transaction is here is answered 200 and CANCELs the branches;
  any other is relayed statefully in a transaction of its own, as any request (Kamailio 5.6's
  default: its retransmissions, the downstream reply relayed back, or a local 408), unless
  ``unmatched_cancel`` says to forward it statelessly (1) or to drop it (2).
* A retransmission of a request with a transaction gets the last reply again (absorbed).
* Otherwise a transaction is made (100 Trying for INVITE) and one branch sent per
  destination: branch 0 is the R-URI (to $du when set), then every append_branch entry; the
  branch route (t_on_branch) runs on each branch's copy and may change or drop it. A branch
  to a name that is not resolved yet goes out when its lookup answers (the worker goes on
  meanwhile); one that does not resolve ends as a local 478.
In a failure route, t_relay adds the branches to the transaction being decided (serial forking).

The transaction's lifecycle is ``TmService``'s and the routes are ``ScriptCallbacks``': this
module calls them, they never call back here.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from kemi_core.api import (
    PENDING,
    SOCKET_EDIT,
    MsgContext,
    RouteType,
    apply_via,
    for_socket,
    forward_to,
    listen_for,
    received_via,
    send_local,
    uri_target,
    via_params,
    via_sent_by,
)
from kemi_core.sip import SipParseError, build_reply, reply_top_via
from kemi_tm.actions import Dest, TransactionStateError
from kemi_tm.keys import key_for
from kemi_tm.state import MODULE, ReqState, req_state
from kemi_tm.transaction import TmTransaction

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg
    from kemi_tm.service import TmService

log = logging.getLogger("kemi.tm")

#: (proto, host, port) forced by t_relay_to_proto_addr & co.
Target = tuple[str, str, int]

#: the local outcome of a branch whose destination does not resolve (Kamailio's 478)
UNRESOLVABLE = 478

# t_relay's answer when no branch went out: Kamailio 5.6's error codes, which a script may
# test ($rc, or the value of KSR.tm.t_relay())
#: nothing to send (a bad destination, every branch dropped by the branch route)
E_UNSPEC = -1
#: no listen socket for the branch's transport (;transport=tcp with only UDP listeners)
E_NO_SOCKET = -7
#: sending failed (a refused TCP connect): t_relay returns E_UNSPEC, the reply says 477
E_SEND = -477
#: the destination does not resolve
E_BAD_ADDRESS = -478
#: onsend_route dropped every branch (kemi's own code: t_relay returns E_UNSPEC, the reply
#: says 477 as for a send error, sl_reply_error says 500 (1/SL))
E_DROPPED = -1477
#: After these, as in Kamailio, the transaction stays and answers the error itself once the
#: request route is over (unless the script replied statefully or relayed again meanwhile;
#: a stateless reply such as sl_reply_error's does not count): status and reason.
DELAYED_REPLIES = {
    E_BAD_ADDRESS: (478, "Unresolvable destination (478/TM)"),
    E_SEND: (477, "Unfortunately error on sending to next hop occurred (477/TM)"),
    E_DROPPED: (477, "Unfortunately error on sending to next hop occurred (477/TM)"),
    E_NO_SOCKET: (500, "I'm terribly sorry, server error occurred (7/TM)"),
}
#: What sl_reply_error() answers right after such a t_relay in native routes (Kamailio's
#: internal error, which its KEMI engines do not pass on to sl): status, reason, error number.
SL_ERRORS = {
    E_BAD_ADDRESS: (478, "Unresolvable destination", 478),
    E_SEND: (477, "Unfortunately error on sending to next hop occurred", 477),
    E_NO_SOCKET: (500, "I'm terribly sorry, server error occurred", 7),
}
#: the transports a branch needs a listen socket of (UDP goes from the worker's own socket;
#: WebSocket goes over a connection the client opened)
LISTENED_PROTOS = frozenset(("tcp", "tls", "sctp"))


# ---- entry point ------------------------------------------------------------------------
def relay(svc: TmService, ctx: MsgContext, proto: str | None = None,
          target: Target | None = None) -> int:
    """t_relay: 1 when sent, 0 when absorbed (retransmission, ACK), negative on failure
    (E_BAD_ADDRESS, E_NO_SOCKET, E_UNSPEC as Kamailio)."""
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
            done = _relay_cancel(svc, ctx)
            if done != _UNMATCHED:
                return done
            unmatched = svc.settings.unmatched_cancel
            if unmatched:  # Kamailio: 1 forwards it statelessly and ends the script, 2 drops it
                return (_stateless(ctx, proto, target) and 0) if unmatched == 1 else 1
        if current is None:  # req_state's new state, made here: the lookup was done above
            current = ctx.mod_state[MODULE] = ReqState()
        state = current
        tx = state.tx
        # ;received/;rport for the copies (the transaction's and each branch's), computed
        # once from the request (whose Via is parsed)
        via = received_via(ctx, msg)
        source: SipMsg | None = None
        if tx is None:
            key = key_for(msg, method)  # server_key of a request other than ACK
            old = svc.table.get(key)
            if old is not None:
                svc.absorb(old, msg)
                return 0
            tx = svc.open_transaction(ctx, key, via, state)
            source = tx.request  # the request as routed, ``via`` on top: a branch's copy
            tx.socket_edit = ctx.extra.get(SOCKET_EDIT)  # for a failure route's branches
        if state.callbacks is not tx.callbacks:  # the same object when made here
            state.callbacks.merge_into(tx.callbacks)
        tx.flags = ctx.flags
        if tx.is_invite:  # 100 Trying, unless something was answered (e.g. after t_newtran)
            tx.start(svc.clock.now())
    except SipParseError as exc:
        return _malformed(exc)
    sent = _send_branches(svc, ctx, tx, proto, target, via, in_failure=False, source=source)
    if sent <= 0:
        return _nothing_sent(svc, ctx, tx, state, sent or E_UNSPEC)
    ctx.replied = True  # the transaction answers from now on
    return 1


def _malformed(exc: SipParseError) -> int:
    """t_relay of a request it cannot read (its Via, its key, the 100 Trying): logged, -1."""
    log.error("t_relay: malformed request: %s", exc.reason)
    return -1


def _branch_refused(svc: TmService, ctx: MsgContext, tx: TmTransaction, state: ReqState,
                    now: float) -> int:
    """The transport refused the lone branch of a new request (the compiled relay's rare
    end, relay_fast): what ``_send_branches`` and ``relay`` do then."""
    _send_failed(tx, 0, now)
    svc.done(tx, decide=False)
    return _nothing_sent(svc, ctx, tx, state, E_SEND)


def _nothing_sent(svc: TmService, ctx: MsgContext, tx: TmTransaction, state: ReqState,
                  error: int) -> int:
    """t_relay in a request route sent no branch: its (negative) return value. A known error
    leaves the transaction to answer it once the route is over (``DELAYED_REPLIES``); any
    other forgets the transaction, so the script may answer statelessly."""
    delayed = DELAYED_REPLIES.get(error)
    if delayed is None:
        svc.table.remove(tx)
        state.tx = None
        return error
    engine = ctx.core.engine
    sl_error = SL_ERRORS.get(error)
    if sl_error is not None and engine is not None and engine.name == "native":
        ctx.extra["last_error"] = sl_error  # for sl_reply_error (kept per message)
    svc.clock.call_later(0.0, _delayed_reply, svc, tx, *delayed)
    return E_UNSPEC if error in (E_SEND, E_DROPPED) else error


def _delayed_reply(svc: TmService, tx: TmTransaction, status: int, reason: str) -> None:
    """After the request route of a t_relay that sent nothing: the transaction's error reply,
    unless it was answered or has a branch under way meanwhile."""
    if tx not in svc.table or tx.final_status or any(b.pending for b in tx.branches):
        return
    try:
        tx.reply(status, reason, svc.clock.now())
    except TransactionStateError as exc:
        log.error("t_relay: cannot send the error reply: %s", exc)
        return
    svc.done(tx)


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
        if not tx.on_request(ctx.msg, svc.clock.now()):
            svc.done(tx)
            return 0  # the hop-by-hop ACK of our negative final: absorbed
    return _stateless(ctx, proto, target)  # end to end (2xx): routed like any request


#: _relay_cancel's answer for a CANCEL whose INVITE transaction is not here
_UNMATCHED = -2


def _relay_cancel(svc: TmService, ctx: MsgContext) -> int:
    """CANCEL of an INVITE we hold: 200 here, CANCEL on every pending branch (their 487 goes
    up through the transaction). 1 done, ``_UNMATCHED`` when the INVITE is not here."""
    msg = ctx.msg
    inv = svc.table.lookup_cancel_target(msg)
    if inv is None:
        return _UNMATCHED
    assert isinstance(inv, TmTransaction)
    try:
        rcv = ctx.rcv
        data = build_reply(msg, 200, "canceling", to_tag=inv.to_tag,
                           top_via=reply_top_via(msg, rcv.src_ip, rcv.src_port, ctx.force_rport))
    except SipParseError:
        return -1
    svc.core.send_reply(ctx, data)
    inv.cancel_all(svc.clock.now())
    svc.done(inv)
    return 1


# ---- branches -----------------------------------------------------------------------------
Destination = tuple[str, str | None, str | None, int, str | None]


def _destinations(ctx: MsgContext) -> tuple[Destination, ...]:
    """(R-URI, $du, Path vector, branch flags, forced socket) of branch 0 and of every
    appended branch (each leaves from the socket forced when it was appended, as in
    Kamailio; branch 0 from the one forced now)."""
    first = (ctx.msg.ruri, ctx.dst_uri, ctx.extra.get("path_vec"), ctx.bflags, ctx.send_socket)
    if not ctx.branches:  # most requests have no appended branch: no comprehension to run
        return (first,)
    return (first, *[(b.uri, b.dst_uri, b.path, b.flags, b.send_socket) for b in ctx.branches])


def _add_path(breq: SipMsg, path: str) -> None:
    """The Path a contact registered through (RFC 3327, set by registrar's lookup) becomes the
    branch's Route: above the request's own Route headers, else after its last Via."""
    if not breq.add_header_before("route", "Route", path):
        breq.add_header_after_last("via", "Route", path)


def _branch_copy(msg: SipMsg, ruri: str, via: str | None, path: str | None) -> SipMsg:
    """A branch's own copy of the request: its R-URI, the request's top Via as we pass it on
    (``via``, None: unchanged), the Path it goes through as Route."""
    breq = msg.copy()
    if ruri != breq.ruri:
        breq.set_ruri(ruri)
    if via is not None:
        apply_via(breq, via)
    if path:
        _add_path(breq, path)
    return breq


def _send_branches(svc: TmService, ctx: MsgContext, tx: TmTransaction, proto: str | None,
                   target: Target | None, via: str | None, in_failure: bool,
                   source: SipMsg | None = None) -> int:
    """Add one branch per destination, then send them all (so a branch that fails at once
    cannot end the step before the others exist). Returns how many went out or wait for their
    destination's name to resolve, else (none did) the error code of the last branch that
    could not go. ``via``: the request's top Via as we pass it on, with ;received/;rport
    (``received_via``; None when it goes unchanged). ``source``: the request as routed with
    ``via`` applied already (the transaction's request, made by this t_relay), None to make
    a branch's copy from the request.

    The usual request has one destination (its R-URI, or $du) and no Path, transport or target
    forced; when it goes (after its branch route, if one is armed) to a known address (over
    TCP/TLS/SCTP: with a listen socket of that transport), its one branch is added and sent here, without the per-destination steps of
    ``_send_each_branch`` (which does the rest)."""
    if ctx.branches or target is not None or proto or ctx.extra.get("path_vec"):
        return _send_each_branch(svc, ctx, tx, proto, target, via, in_failure)
    msg = ctx.msg
    route = tx.callbacks.branch
    sctx = ctx  # the context the branch is sent from (its socket, its Record-Route)
    if route is None:
        breq, du, bflags = msg, ctx.dst_uri, ctx.bflags
    else:  # the branch route on the branch's own copy, as _send_each_branch runs it
        breq = source.copy() if source is not None else _branch_copy(msg, msg.ruri, via, None)
        bctx = svc.script.branch(ctx, breq, ctx.dst_uri, tx, len(tx.branches), ctx.bflags,
                                 ctx.send_socket)
        if bctx is None:
            log.debug("t_relay: branch 0 dropped by branch route %s", route)
            return E_UNSPEC
        breq, du, bflags, sctx = bctx.msg, bctx.dst_uri, bctx.bflags, bctx
    hop = uri_target(du or breq.ruri)
    # over TCP/TLS/SCTP only with a listen socket of that transport (_send_each_branch's
    # error when there is none)
    if hop is not None and (hop[0] not in LISTENED_PROTOS
                            or listen_for(ctx.core, hop[0]) is not None):
        bproto, host, port = hop
        ip = ctx.core.resolver.known(host)
        if ip is not None:
            now = svc.clock.now()
            forced = sctx.send_socket
            local = send_local(sctx, bproto, forced, ip)
            d = _dest(bproto, ip, port, local)
            # as it leaves from its socket (rr's Record-Route: a copy with it)
            breq = for_socket(sctx, breq, bproto, forced, local)
            try:
                # a copy made for the branch route is the branch's (``owned``); else the
                # branch is the request's bytes with our Via
                index = tx.add_branch(breq, d, now, sent_by=via_sent_by(ctx, bproto, local),
                                      via_params=via_params(ctx), owned=route is not None,
                                      top_via=via)
            except TransactionStateError as exc:
                log.error("t_relay: cannot add a branch: %s", exc)
                return E_UNSPEC
            b = tx.branches[index]
            b.flags = bflags
            core = svc.core
            if core.onsend is not None and not _onsend(svc, tx, index, ctx, now):
                svc.done(tx, decide=in_failure)
                return E_DROPPED
            if core.send(d.proto, d.host, d.port, b.data, d.local):
                return 1
            _send_failed(tx, index, now)
            svc.done(tx, decide=in_failure)
            return E_SEND
    routed = None if route is None else (breq, du, bflags, sctx)
    return _send_each_branch(svc, ctx, tx, proto, target, via, in_failure, routed)


def _onsend(svc: TmService, tx: TmTransaction, index: int, ctx: MsgContext | None,
            now: float) -> bool:
    """The script's onsend_route on the first send of branch ``index``, which it sees as the
    request routed (``ctx``; None: the transaction's request) and its bytes in $snd(buf).
    False when it dropped the branch: never sent, it ends as a local 477 (``branch_dropped``)."""
    b = tx.branches[index]
    d = b.dest
    if ctx is None:
        sent = svc.core.run_onsend(tx.request, tx.rcv, b.data, d.proto, d.host, d.port)
    else:
        sent = svc.core.run_onsend(ctx.msg, ctx.rcv, b.data, d.proto, d.host, d.port, ctx)
    if not sent:
        log.debug("t_relay: branch %d to %s:%d dropped by onsend_route", index, d.host, d.port)
        tx.branch_dropped(index, now)
    return sent


def _send_failed(tx: TmTransaction, index: int, now: float) -> None:
    """The transport refused the request of branch ``index``: logged, a local final for it."""
    d = tx.branches[index].dest
    log.error("t_relay: sending branch %d to %s:%d failed", index, d.host, d.port)
    tx.branch_send_failed(index, now)


def _send_each_branch(svc: TmService, ctx: MsgContext, tx: TmTransaction, proto: str | None,
                      target: Target | None, via: str | None, in_failure: bool,
                      routed: tuple[SipMsg, str | None, int, MsgContext] | None = None) -> int:
    """``_send_branches`` for any request: each destination's branch through its steps (the
    branch route, a Path, a forced transport or target, a listen socket, a name to resolve).
    ``routed``: the first branch's (request copy, $du, branch flags, context) after its branch
    route, which ``_send_branches`` ran already."""
    now = svc.clock.now()
    pending: list[int] = []
    msg = ctx.msg
    branch_route = tx.callbacks.branch
    vparams = via_params(ctx)
    resolver = ctx.core.resolver
    waiting = 0
    error = E_UNSPEC
    for index, (ruri, du, path, bflags, forced) in enumerate(_destinations(ctx)):
        # the usual branch (the request's R-URI, no Path, no branch route) is the request as
        # it is: add_branch puts our Via (and ``via``) on its bytes, no copy of it is made
        plain = branch_route is None and not path and ruri == msg.ruri
        sctx = ctx  # the context the branch is sent from (its socket, its Record-Route)
        if routed is not None:  # the first branch, its branch route run
            (breq, du, bflags, sctx), routed = routed, None
            forced = sctx.send_socket
        else:
            breq = msg if plain else _branch_copy(msg, ruri, via, path)
            if branch_route is not None:
                bctx = svc.script.branch(ctx, breq, du, tx, len(tx.branches), bflags, forced)
                if bctx is None:
                    log.debug("t_relay: branch %d dropped by branch route %s", index,
                              branch_route)
                    continue
                breq, du, bflags, sctx = bctx.msg, bctx.dst_uri, bctx.bflags, bctx
                forced = bctx.send_socket  # as the branch route left it
        uri = du or breq.ruri
        # the usual branch (no transport or target forced) goes to its URI's target
        hop = uri_target(uri) if target is None and not proto else _next_hop(uri, proto, target)
        if hop is None:
            log.error("t_relay: bad destination %r", uri)
            continue
        bproto, host, port = hop
        if bproto in LISTENED_PROTOS and listen_for(ctx.core, bproto) is None:
            log.error("t_relay: no %s listen socket to send to %s:%d from", bproto, host, port)
            error = E_NO_SOCKET
            continue
        # as it leaves from its socket (rr's Record-Route: a copy with it; still ``plain``:
        # add_branch puts ``via`` on its bytes)
        local = send_local(sctx, bproto, forced, host)
        breq = for_socket(sctx, breq, bproto, forced, local)
        sent_by = via_sent_by(ctx, bproto, local)
        ip = resolver.known(host)
        if ip is None:
            own = _branch_copy(breq, ruri, via, path) if plain else breq
            found = resolver.resolve(host, functools.partial(
                _resolved, svc, tx, own, hop, sent_by, vparams, bflags, local))
            if found is None:
                log.error("t_relay: cannot resolve the destination %s", host)
                error = E_BAD_ADDRESS
                continue
            if found is PENDING:  # the branch goes out when the name resolves
                tx.dns_pending += 1
                waiting += 1
                continue
            ip = found
        try:
            # breq is this branch's own copy (the client transaction takes it over), or the
            # request itself (plain: not the branch's to change)
            index = tx.add_branch(breq, _dest(bproto, ip, port, local), now, sent_by=sent_by,
                                  via_params=vparams, owned=not plain, top_via=via)
        except TransactionStateError as exc:
            log.error("t_relay: cannot add a branch: %s", exc)
            break
        pending.append(index)
        tx.branches[index].flags = bflags
    sent = failed = dropped = 0
    core = svc.core
    send = core.send
    onsend = core.onsend is not None and core.onsend_name() is not None
    for index in pending:
        if onsend and not _onsend(svc, tx, index, ctx, now):
            dropped += 1
            continue
        b = tx.branches[index]  # _send_request written out: one branch per call, usually
        d = b.dest
        if send(d.proto, d.host, d.port, b.data, d.local):
            sent += 1
        else:
            failed += 1
            _send_failed(tx, index, now)
    if failed or dropped:
        # every branch failed at once in a request route: no failure route, t_relay's -1
        # lets the script answer
        error = E_SEND if failed else E_DROPPED
        svc.done(tx, decide=bool(sent or waiting or in_failure))
    return sent + waiting or error


def _send_request(svc: TmService, tx: TmTransaction, index: int) -> bool:
    """Send the request of a branch just added (armed); an error is logged."""
    b = tx.branches[index]
    d = b.dest
    if svc.core.send(d.proto, d.host, d.port, b.data, d.local):
        return True
    log.error("t_relay: sending branch %d to %s:%d failed", index, d.host, d.port)
    return False


def _resolved(svc: TmService, tx: TmTransaction, breq: SipMsg, hop: Target, sent_by: str,
              vparams: str, bflags: int, local: tuple[str, int] | None, ip: str | None) -> None:
    """A branch's destination name answered: the branch goes out now (or ends as a local 478
    when the name does not resolve), unless the transaction was answered meanwhile."""
    tx.dns_pending -= 1
    if tx not in svc.table or tx.final_status or tx.canceled:
        return
    proto, host, port = hop
    now = svc.clock.now()
    try:
        index = tx.add_branch(breq, Dest(proto, ip or host, port, local), now,
                              sent_by=sent_by, via_params=vparams, owned=True)
    except TransactionStateError as exc:
        log.error("t_relay: cannot add a branch: %s", exc)
        return
    tx.branches[index].flags = bflags
    if ip is None:
        log.error("t_relay: the destination %s does not resolve", host)
        tx.branch_send_failed(index, now, UNRESOLVABLE)
    elif svc.core.onsend is not None and not _onsend(svc, tx, index, None, now):
        pass  # dropped by onsend_route: ended as a local 477
    elif not _send_request(svc, tx, index):
        tx.branch_send_failed(index, now)
    svc.done(tx)


def _next_hop(uri: str, proto: str | None, target: Target | None) -> Target | None:
    """(proto, host, port) a branch goes to: ``target`` when forced, else its $du or R-URI
    (``uri``), with the transport ``proto`` when forced; the host may be a name. None: a bad
    URI (the caller logs it)."""
    if target is not None:
        return (target[0].lower(), target[1], target[2])
    if proto:
        uri = _with_transport(uri, proto)
    return uri_target(uri)


@functools.lru_cache(maxsize=256)
def _dest(proto: str, ip: str, port: int, local: tuple[str, int] | None = None) -> Dest:
    """Dest is frozen: one object serves every branch to one address (from one socket)."""
    return Dest(proto, ip, port, local)


def _serial_fork(svc: TmService, ctx: MsgContext, tx: TmTransaction, proto: str | None,
                 target: Target | None) -> int:
    """t_relay in a failure route: a new serial step on the same transaction."""
    state = req_state(ctx)
    state.callbacks.merge_into(tx.callbacks)
    tx.flags = ctx.flags
    tx.settings = svc.settings.timers_for(tx.overrides)
    # (the saved request's Via is the one sent on already, ;received and ;rport= in place:
    # stamped again, a forced ;rport would get a ;received the first branch did not have)
    sent = _send_branches(svc, ctx, tx, proto, target, None, in_failure=True)
    return 1 if sent > 0 else E_UNSPEC if sent in (0, E_SEND, E_DROPPED) else sent


def relay_cancel(svc: TmService, ctx: MsgContext) -> int:
    """t_relay_cancel: 0 when the CANCEL matched and was handled, 1 when it matched nothing."""
    if ctx.msg.method != "CANCEL":
        return 1
    ret = _relay_cancel(svc, ctx)
    return 1 if ret == _UNMATCHED else (0 if ret > 0 else ret)
