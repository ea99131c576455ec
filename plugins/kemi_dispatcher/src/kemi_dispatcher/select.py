"""Selecting destinations: Kamailio's algorithms, the failover list (XAVP) and where the choice
is written ($du, the R-URI's host and port, or the XAVP only).

What a selection does, as Kamailio 5.6 does it (observed side by side): the algorithm gives a
first index into the set; an inactive or disabled destination there is skipped for the next
usable one (wrapping); with the failover flag (``flags`` bit 2) the XAVP ``_dsdst_`` gets the
chosen destination first, then the other usable ones in set order after it, and ``_dsctx_``
their count; ``ds_next_*`` drops the first entry and uses the new first one.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.api import Branch, MsgContext, set_pv
from kemi_core.sip import SipParseError, parse_uri
from kemi_dispatcher.destinations import Dest, DestSet
from kemi_dispatcher.hashing import ds_hash, uri_key
from kemi_dispatcher.state import SetState, usable

if TYPE_CHECKING:
    from kemi_dispatcher.service import DsService

log = logging.getLogger("kemi.dispatcher")

#: where ds_select_* writes the first destination
TO_DST, TO_DOMAIN, TO_XAVP = 0, 1, 2

HASH_ALGS = frozenset({0, 1, 2, 3, 5, 7})
_USERNAME = re.compile(r'username\s*=\s*"([^"]*)"', re.I)


def _hash(svc: DsService, ctx: MsgContext, alg: int) -> int | None:
    """The hash a hashing algorithm uses, or None when the message lacks what it hashes."""
    msg = ctx.msg
    user_only = svc.settings.user_only
    try:
        if alg == 0:
            return ds_hash(msg.call_id)
        if alg == 1:
            return ds_hash(*uri_key(msg.from_.uri_text, user_only))
        if alg == 2:
            return ds_hash(*uri_key(msg.to.uri_text, user_only))
        if alg == 3:
            return ds_hash(*uri_key(msg.ruri, user_only))
    except SipParseError:
        return None
    if alg == 5:
        for name in ("proxy-authorization", "authorization"):
            value = msg.header(name)
            m = _USERNAME.search(value) if value else None
            if m:
                return ds_hash(m.group(1))
        return None
    if alg == 7:
        if not svc.settings.hash_pvar:
            log.error("dispatcher: algorithm 7 needs the hash_pvar parameter")
            return None
        return ds_hash(ctx.core.pv.format(svc.settings.hash_pvar)(ctx))
    return None


def _next_usable(flags: tuple[int, ...], start: int, count: int) -> int | None:
    for k in range(count):
        i = (start + k) % count
        if usable(flags[i]):
            return i
    return None


def _rr(svc: DsService, setid: int, flags: tuple[int, ...], count: int) -> int | None:
    """Round-robin on the set's shared cursor: the next usable destination from the cursor;
    the cursor moves to the one after the destination chosen."""
    def step(last: int) -> tuple[int, int]:
        chosen = _next_usable(flags, last % count, count)
        return (last if chosen is None else (chosen + 1) % count), (-1 if chosen is None else chosen)

    chosen = svc.state.cursor("rr", setid, step)
    return None if chosen < 0 else chosen


def _slots(svc: DsService, setid: int, slots: tuple[int, ...]) -> int:
    return svc.state.cursor("w", setid, lambda c: ((c + 1) % len(slots), slots[c % len(slots)]))


def _rweight_slots(dests: tuple[Dest, ...], flags: tuple[int, ...], count: int) -> tuple[int, ...]:
    """Alg 11: 100 slots shared by the usable destinations in proportion to their rweight."""
    live = [i for i in range(count) if usable(flags[i]) and dests[i].rweight]
    total = sum(dests[i].rweight for i in live)
    if not total:
        return ()
    slots: list[int] = []
    for i in live:
        slots += [i] * (dests[i].rweight * 100 // total)
    slots += [live[-1]] * (100 - len(slots))
    return tuple(slots)


def first_index(svc: DsService, ctx: MsgContext, dset: DestSet, st: SetState, alg: int,
                count: int) -> int | None:
    """The index the algorithm gives (before skipping unusable ones); None: nothing to pick."""
    dests, flags = dset.dests, st.flags
    if alg in HASH_ALGS:
        h = _hash(svc, ctx, alg)
        if h is not None:
            return h % count
        if alg != 5:
            return None
        alg = 4  # no username: round-robin
    if alg == 14:
        prios = {d.priority for d in dests[:count]}
        alg = 4 if len(prios) == 1 and prios.pop() > 0 else 8
    if alg in (4, 64):
        return _rr(svc, dset.setid, flags, count)
    if alg == 6:
        return random.randrange(count)
    if alg == 9 and dset.wlist:
        return _slots(svc, dset.setid, dset.wlist)
    if alg == 10:
        return svc.call_load.least_loaded(dset, flags, count)
    if alg == 11:
        slots = _rweight_slots(dests, flags, count)
        return _slots(svc, dset.setid, slots) if slots else None
    if alg == 13:
        top = max((dests[i].priority for i in range(count) if usable(flags[i])), default=None)
        if top is None:
            return None
        best = tuple(0 if dests[i].priority == top else flags[i] | 1 for i in range(count))
        return _rr(svc, dset.setid, best, count)
    return 0  # 8, and algorithms not implemented: the first entry, as Kamailio


def choose(svc: DsService, ctx: MsgContext, setid: int, alg: int,
           limit: int = 0) -> tuple[DestSet, list[int]] | None:
    """The destinations to use in order (indexes into the set), or None when none is usable."""
    st = svc.state.set_state(setid)
    if st is None:
        log.error("dispatcher: destination set [%d] not found", setid)
        return None
    dset = svc.state.current(st.gen).sets.get(setid)
    if dset is None or not dset.dests:
        log.error("dispatcher: destination set [%d] not found", setid)
        return None
    n = len(dset.dests)
    default = n - 1 if svc.settings.use_default and n > 1 else None
    count = n - 1 if default is not None else n
    start = first_index(svc, ctx, dset, st, alg, count)
    chosen = None if start is None else _next_usable(st.flags, start, count)
    if chosen is None:
        if default is not None and usable(st.flags[default]):
            return dset, [default]
        return None
    order = [chosen]
    for k in range(1, count):
        i = (chosen + k) % count
        if usable(st.flags[i]):
            order.append(i)
    if default is not None and usable(st.flags[default]):
        order.append(default)
    if limit > 0 and len(order) > limit:
        order = order[:limit - 1] + [order[-1]] if default is not None and limit > 1 \
            else order[:limit]
    return dset, order


# ---- writing the choice ------------------------------------------------------------------
def domain_uri(ruri: str, dest: Dest) -> str:
    """The R-URI with the host, port and parameters of ``dest`` (ds_select_domain)."""
    try:
        cur, target = parse_uri(ruri), parse_uri(dest.uri)
    except SipParseError:
        return dest.uri
    return str(target.with_(user=cur.user, password=cur.password, scheme=target.scheme))


def _entry(svc: DsService, dest: Dest, alg: int) -> dict[str, Any]:
    item: dict[str, Any] = {"grp": dest.setid, "uri": dest.uri}
    if dest.socket:
        item["socket"] = dest.socket
    if alg == 10 and dest.duid:
        item["dstid"] = dest.duid
    if svc.settings.xavp_dst_attrs and dest.attrs:
        item["attrs"] = dest.attrs
    return item


def apply(svc: DsService, ctx: MsgContext, dest: Dest, where: int) -> None:
    if where == TO_DST:
        ctx.dst_uri = dest.uri
        sock = dest.socket or svc.settings.default_socket
        if sock:
            ctx.send_socket = sock
    elif where == TO_DOMAIN:
        ctx.msg.ruri = domain_uri(ctx.msg.ruri, dest)


def select(svc: DsService, ctx: MsgContext, setid: int, alg: int, limit: int, where: int) -> int:
    """ds_select_dst / ds_select_domain / ds_select: 1 when a destination was chosen, -1 not."""
    s = svc.settings
    if where == TO_DST and not s.force_dst and ctx.dst_uri:
        log.error("dispatcher: destination URI already set and force_dst is off")
        return -1
    if alg == 10 and (s.hash_size <= 0 or not ctx.msg.is_request or ctx.msg.method != "INVITE"):
        log.error("dispatcher: algorithm 10 needs ds_hash_size and an INVITE")
        return -1
    found = choose(svc, ctx, setid, alg, limit)
    if found is None:
        return -1
    dset, order = found
    dests = [dset.dests[i] for i in order]
    if alg == 12:
        apply(svc, ctx, dests[0], where)
        for d in dests[1:]:
            uri = domain_uri(ctx.msg.ruri, d) if where == TO_DOMAIN else ctx.msg.ruri
            ctx.branches.append(Branch(uri=uri, dst_uri=d.uri if where == TO_DST else None))
        return 1
    apply(svc, ctx, dests[0], where)
    if alg == 10:
        svc.call_load.add(ctx.msg.call_id, dests[0])
    if s.failover or where == TO_XAVP:
        entries = [_entry(svc, d, alg) for d in dests]
        ctx.xavps[s.xavp_dst] = entries + ctx.xavps.get(s.xavp_dst, [])
        if s.xavp_ctx_cnt:
            ctx.xavps.setdefault(s.xavp_ctx, []).insert(0, {"cnt": len(entries)})
    elif s.xavp_ctx_cnt:
        ctx.xavps.setdefault(s.xavp_ctx, []).insert(0, {"cnt": 0})
    return 1


def _current(svc: DsService, ctx: MsgContext) -> list[dict[str, Any]] | None:
    entries = ctx.xavps.get(svc.settings.xavp_dst)
    return entries if entries else None


def _dest_of(svc: DsService, entry: dict[str, Any]) -> Dest | None:
    setid, uri = entry.get("grp"), entry.get("uri")
    dset = svc.state.current().sets.get(int(setid)) if isinstance(setid, int) else None
    if dset is not None:
        for d in dset.dests:
            if d.uri == uri:
                return d
    return None


def next_dst(svc: DsService, ctx: MsgContext, where: int) -> int:
    """ds_next_dst / ds_next_domain: drop the current entry, use the next one (-1: none left)."""
    entries = _current(svc, ctx)
    if entries is None or len(entries) < 2:
        return -1
    old = entries.pop(0)
    entry = entries[0]
    dest = _dest_of(svc, entry)
    if dest is None:
        dest = Dest(setid=int(entry.get("grp") or 0), uri=str(entry.get("uri")))
    if old.get("dstid") is not None:
        svc.call_load.replace(ctx.msg.call_id, dest)
    apply(svc, ctx, dest, where)
    return 1


def set_dst(svc: DsService, ctx: MsgContext, where: int) -> int:
    """ds_set_dst / ds_set_domain: use the current entry again."""
    entries = _current(svc, ctx)
    if entries is None:
        return -1
    entry = entries[0]
    dest = _dest_of(svc, entry) or Dest(setid=int(entry.get("grp") or 0), uri=str(entry.get("uri")))
    apply(svc, ctx, dest, where)
    return 1


def current_target(svc: DsService, ctx: MsgContext) -> tuple[int, str] | None:
    """(set id, URI) of the destination last used (ds_mark_dst)."""
    entries = _current(svc, ctx)
    if entries is None:
        return None
    setid, uri = entries[0].get("grp"), entries[0].get("uri")
    return (int(setid), str(uri)) if setid is not None and uri else None


def set_var(ctx: MsgContext, name: str, value: Any, what: str,
            setter: Callable[[MsgContext, str, Any], None] = set_pv) -> None:
    if name:
        try:
            setter(ctx, name, value)
        except Exception as exc:  # a bad PV name in the config: logged, the match stands
            log.error("dispatcher: cannot set %s %s: %s", what, name, exc)
