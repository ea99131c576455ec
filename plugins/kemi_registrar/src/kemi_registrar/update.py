"""The change one REGISTER makes to an AOR's contacts: a pure function of the old list.

It runs under the shared store's writer lock (usrloc's ``Domain.update``), so it only
computes: no I/O, no logging of its own. Kamailio's rules, as observed on 5.6:

- a Contact matches a stored one by ``+sip.instance`` and ``reg-id`` when it has an instance
  (a stored one without is another binding, even of the same URI), else by usrloc's
  ``matching_mode`` (contact URI; with Call-ID; with path; Call-ID only), and a refresh
  without an instance keeps the binding's instance and reg-id;
- the same Call-ID with a CSeq not above the stored one is refused ("Invalid CSeq number"),
  except the same CSeq within ``cseq_delay`` seconds: a retransmission, answered, not applied;
- expires 0 removes the matched contact; otherwise it is refreshed or inserted (q order);
- ``max_contacts`` counts live contacts after the change (503 when exceeded);
- flag 0x04 keeps only this REGISTER's contacts;
- the return code is 3 when a contact was removed, else 1 when one was inserted, else 2.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import attrs

from kemi_core.sip import reg_one
from kemi_registrar.request import SAVE_MEMORY_ONLY, SAVE_SINGLE, Binding, RegError, Request
from kemi_usrloc.contact import FL_MEM, Contact, new_ruid, place

RC_INSERTED, RC_UPDATED, RC_DELETED, RC_QUERY = 1, 2, 3, 4

_tuple_new = tuple.__new__


class Outcome(NamedTuple):
    rc: int
    error: RegError | None = None
    #: the ruids of the contacts a Contact with expires 0 removed (their rows follow save()'s
    #: memory-only flag, not the contact's own: Kamailio's registrar sets or clears FL_MEM on
    #: a contact before it unregisters it)
    unregistered: tuple[str, ...] = ()


_UPDATED = Outcome(RC_UPDATED)


@attrs.frozen
class Rules:
    matching_mode: int
    cseq_delay: int
    desc_time_order: bool
    #: the core's server_id, stamped on the contacts this server saves (usrloc's
    #: server_id_filter: each node of a cluster expires only its own)
    server_id: int = 0


def _matches(c: Contact, b: Binding, req: Request, rules: Rules) -> bool:
    if b.instance is not None:  # by instance alone: a binding without one is another (run)
        return c.instance == b.instance and c.reg_id == b.reg_id
    mode = rules.matching_mode
    if mode == 3:
        return c.callid == req.callid
    if c.c != b.uri:
        return False
    if mode == 1:
        return c.callid == req.callid
    if mode == 2:
        return c.path == req.path
    return True


def _find(contacts: list[Contact], b: Binding, req: Request, rules: Rules) -> int | None:
    """The index of the stored contact ``b`` matches (_matches; its usual case, a binding
    without an instance matched by contact URI alone, compared here without a call each)."""
    if b.instance is None and rules.matching_mode == 0:
        uri = b.uri
        for i, c in enumerate(contacts):
            if c.c == uri:
                return i
        return None
    for i, c in enumerate(contacts):
        if _matches(c, b, req, rules):
            return i
    return None


def _refreshed(cur: Contact, b: Binding, req: Request, now: int, flags: int,
               rules: Rules) -> Contact:
    """``cur`` refreshed by ``b`` of ``req``: cur._replace(...) of these fields at a fraction of
    its cost (all 21 in order; made as Contact._make makes it, without Contact.__new__). A
    Contact without ``+sip.instance`` leaves the binding's instance and reg-id as they were
    (Kamailio 5.6, run: its 200 still lists them)."""
    keep = b.instance is None
    return _tuple_new(Contact, (  # type: ignore[no-any-return]
        cur.ruid, cur.aor, b.uri, now + b.expires, b.q, req.callid, req.cseq,
        (cur.flags & ~FL_MEM) | (FL_MEM if flags & SAVE_MEMORY_ONLY else 0), req.cflags,
        req.user_agent, req.received, req.path, req.socket, b.methods,
        cur.instance if keep else b.instance, cur.reg_id if keep else b.reg_id,
        rules.server_id, cur.tcpconn_id, cur.keepalive, now, cur.state))


def _inserted(b: Binding, req: Request, now: int, flags: int, rules: Rules) -> Contact:
    """The contact ``b`` of ``req`` adds to its AOR."""
    return Contact(
        ruid=new_ruid(), aor=req.aor, c=b.uri, expires=now + b.expires, q=b.q,
        callid=req.callid, cseq=req.cseq, flags=FL_MEM if flags & SAVE_MEMORY_ONLY else 0,
        cflags=req.cflags, user_agent=req.user_agent, received=req.received, path=req.path,
        socket=req.socket, methods=b.methods, instance=b.instance, reg_id=b.reg_id,
        server_id=rules.server_id, last_modified=now)


def one(cur: Contact | None, arg: tuple[Request, int, int, Rules]) -> Contact | None:
    """apply() of the usual REGISTER, on an AOR's only contact (None: it has none), as usrloc's
    update_one runs it: the contact the AOR keeps, or None when apply() must decide. Only for a
    request of one Contact that does not remove it (``bindings[0].expires`` not 0): inserted
    on an AOR without contacts, or refreshing its only contact when that is the one it matches,
    in CSeq order. (What apply() does for these, without the lists.)"""
    req, now, flags, rules = arg
    b = req.bindings[0]
    if cur is None:
        return _inserted(b, req, now, flags, rules)
    if ((cur.c == b.uri if b.instance is None and rules.matching_mode == 0
         else _matches(cur, b, req, rules))
            and (req.cseq > cur.cseq or cur.callid != req.callid)):
        return _refreshed(cur, b, req, now, flags, rules)
    return None


def apply(old: list[Contact], req: Request, now: int, flags: int,
          rules: Rules) -> tuple[list[Contact] | None, Outcome]:
    """``(new contacts or None when unchanged, outcome)`` for ``req`` on ``old``."""
    if req.star:
        return ([] if old else None), Outcome(RC_DELETED)
    bindings = req.bindings
    if not bindings:
        return None, Outcome(RC_QUERY)
    if len(old) == 1 and len(bindings) == 1:
        # The usual refresh: an AOR's only binding, by the phone that made it, in CSeq order.
        # (What the loop below does for it, without its copy, set and flags to test.)
        cur, b = old[0], bindings[0]
        if ((cur.c == b.uri if b.instance is None and rules.matching_mode == 0
             else _matches(cur, b, req, rules))
                and (req.cseq > cur.cseq or cur.callid != req.callid)):
            if b.expires == 0:
                return [], Outcome(RC_DELETED, unregistered=(cur.ruid,))
            return [_refreshed(cur, b, req, now, flags, rules)], _UPDATED
    contacts = list(old)
    inserted = updated = False
    unregistered: list[str] = []
    touched: set[str] = set()
    for b in req.bindings:
        i = _find(contacts, b, req, rules)
        if i is None:
            if b.expires == 0:
                continue
            new = _inserted(b, req, now, flags, rules)
            contacts = place(contacts, new, rules.desc_time_order)
            touched.add(new.ruid)
            inserted = True
            continue
        cur = contacts[i]
        if cur.callid == req.callid and req.cseq <= cur.cseq:
            if (req.cseq == cur.cseq and rules.cseq_delay
                    and now - cur.last_modified <= rules.cseq_delay):
                touched.add(cur.ruid)  # a retransmission: answered, not applied
                continue
            return None, Outcome(-1, RegError("Invalid CSeq number", late=True))
        if b.expires == 0:
            del contacts[i]
            unregistered.append(cur.ruid)
            continue
        refreshed = _refreshed(cur, b, req, now, flags, rules)
        if refreshed.q != cur.q or rules.desc_time_order:
            del contacts[i]
            contacts = place(contacts, refreshed, rules.desc_time_order)
        else:
            contacts[i] = refreshed
        touched.add(cur.ruid)
        updated = True
    if flags & SAVE_SINGLE:
        contacts = [c for c in contacts if c.ruid in touched]
    if (req.max_contacts and inserted
            and sum(1 for c in contacts if c.alive(now)) > req.max_contacts):
        return None, Outcome(-2, RegError("Too many registered contacts", 503,
                                           "Service Unavailable", rc=-2, late=True))
    rc = RC_DELETED if unregistered else RC_INSERTED if inserted else RC_UPDATED if updated \
        else RC_INSERTED
    return contacts, Outcome(rc, unregistered=tuple(unregistered))


#: ``one`` as save() hands it to usrloc: its compiled form when built (the refresh of the
#: AOR's only binding by a Contact without an instance, matching_mode 0; the rest in ``one``)
ONE = one if reg_one is None else partial(reg_one, one, FL_MEM, SAVE_MEMORY_ONLY)
