"""save(): a REGISTER applied to the location table and answered (RFC 3261 10.3)."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext
from kemi_registrar import reply
from kemi_registrar.request import (
    SAVE_MEMORY_ONLY,
    SAVE_NO_REPLY,
    SAVE_PREPARE_REPLY,
    RegError,
    parse_request,
)
from kemi_registrar.state import State, held, state
from kemi_registrar.update import ONE, RC_INSERTED, RC_UPDATED, Outcome, apply
from kemi_registrar.usual import Q_OVERRIDE, save_usual  # (Q_OVERRIDE: set_q_override's key)
from kemi_usrloc.contact import Contact
from kemi_usrloc.domain import UsrlocDbError

log = logging.getLogger("kemi.registrar")


def save(ctx: MsgContext, table: str, flags: int, uri: str | None = None) -> int:
    """Kamailio's save(table, flags, uri): 1 inserted, 2 updated, 3 deleted, 4 contacts
    returned; -1 error (answered), -2 too many contacts (answered 503)."""
    st = held.current or state()  # (state()'s usual case without its call)
    usual = st.usual
    if usual is not None:  # the usual REGISTER in one compiled call (usual.py), else None
        rc = save_usual(usual, ctx, table, flags, uri)
        if rc is not None:
            return rc  # type: ignore[no-any-return]
    return save_rest(ctx, table, flags, uri, st)


def save_rest(ctx: MsgContext, table: str, flags: int, uri: str | None, st: State) -> int:
    """save() past its usual case (the compiled save calls it when reg_save_usual declines)."""
    p, ul = st.params, st.ul
    msg = ctx.msg
    if not msg.is_request:
        log.error("save: the current message is not a request")
        return -1
    dom = ul.domains.get(table) or ul.domain(table)  # (a known table without a call)
    now = int(ctx.core.clock.wall())
    contacts: list[Contact] = []
    rules = st.rules
    try:
        req = parse_request(ctx, p, ul.use_domain, flags, uri, ctx.mod_state.get(Q_OVERRIDE),
                            st.memo)
        bindings = req.bindings
        # The usual REGISTER (one Contact, kept) in one step of usrloc's, else apply() in
        # update()'s (update.one says when).
        got = (dom.update_one(req.aor, ONE, (req, now, flags, rules),
                              not flags & SAVE_MEMORY_ONLY)
               if len(bindings) == 1 and bindings[0].expires else None)
        if got is not None:
            contacts = [got[1]]
            rc = RC_INSERTED if got[0] is None else RC_UPDATED
        else:
            mem_only = bool(flags & SAVE_MEMORY_ONLY)
            unregistered: dict[str, bool] = {}

            def change(old: list[Contact]) -> tuple[list[Contact] | None, Outcome]:
                """Run under the location lock; ``contacts`` gets the ones to answer with."""
                new, outcome = apply(old, req, now, flags, rules)
                contacts[:] = old if new is None else new
                unregistered.update(dict.fromkeys(outcome.unregistered, mem_only))
                return new, outcome

            outcome: Outcome = dom.update(req.aor, change, not mem_only, unregistered)
            if outcome.error is not None:
                outcome.error.aor = req.aor
                raise outcome.error
            rc = outcome.rc
    except RegError as err:
        if err.late and not contacts and err.aor is not None:
            try:
                contacts = dom.get(err.aor)
            except UsrlocDbError:
                contacts = []
        st.stats.rejected.inc()
        _answer_error(ctx, flags, err.code, err.reason,
                      reply.error_headers(err, contacts, now, p))
        return err.rc
    except UsrlocDbError:
        return db_failed(ctx, flags)
    accepted = st.stats.accepted  # a 420 below counts as accepted too, as in Kamailio
    accepted.view[accepted.slot] += 1  # (Counter.inc in place)
    if req.path_unsupported:
        # Kamailio saves the binding, then answers 420 instead of 200 (path_mode 2).
        unsup = RegError("No support for found Path indicated", 420, "Bad Extension",
                         (("Unsupported", "path"), ("Path", req.path or "")), late=True)
        _answer_error(ctx, flags, 420, unsup.reason,
                      reply.error_headers(unsup, contacts, now, p))
        return rc
    # A reply deferred by 0x02 is built without the Path echo, as Kamailio's reg_send_reply.
    if flags & SAVE_NO_REPLY:
        _answer(ctx, flags, 200, "OK", reply.ok_headers(contacts, now, p, None))
    else:  # _answer's usual case, a call less for every 200
        reply.send(ctx, 200, "OK", reply.ok_headers(contacts, now, p, req.path_reply))
    return rc


def db_failed(ctx: MsgContext, flags: int) -> int:
    """save()'s answer when usrloc's database write failed (the record is changed already)."""
    (held.current or state()).stats.rejected.inc()
    _answer_error(ctx, flags, 500, "Server Internal Error",
                  [("P-Registrar-Error", "usrloc_contact_insert failed")])
    return -1


def _answer_error(ctx: MsgContext, flags: int, code: int, reason: str,
                  headers: list[tuple[str, str]]) -> None:
    """An error's answer. Its headers (P-Registrar-Error, the bindings, Min-Expires...) stay
    queued for the message's later replies, as Kamailio's reply lumps do: the script's usual
    ``sl_reply_error()`` after a failed save() sends its 500 with them too."""
    if flags & SAVE_NO_REPLY:
        _answer(ctx, flags, code, reason, headers)
        return
    ctx.extra.setdefault("reply_headers", []).extend(headers)
    reply.send(ctx, code, reason, [])


def _answer(ctx: MsgContext, flags: int, code: int, reason: str,
            headers: list[tuple[str, str]]) -> None:
    if flags & SAVE_NO_REPLY:
        ctx.mod_state[reply.PENDING] = (code, reason, headers)
        if flags & SAVE_PREPARE_REPLY:
            ctx.extra.setdefault("reply_headers", []).extend(headers)
        return
    reply.send(ctx, code, reason, headers)


def reg_send_reply(ctx: MsgContext) -> int:
    """Send the reply save(..., 0x02) prepared; -1 when there is none."""
    pending = ctx.mod_state.pop(reply.PENDING, None)
    if pending is None:
        return -1
    code, reason, headers = pending
    pending_hdrs = ctx.extra.get("reply_headers", [])
    for h in headers:  # prepared by 0x10: sent once, not twice
        if h in pending_hdrs:
            pending_hdrs.remove(h)
    return 1 if reply.send(ctx, code, reason, headers) else -1
