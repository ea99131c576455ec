"""The KEMI functions of htable (KSR.htable.sht_*), with Kamailio 5.6's return values.

Some of those values are Kamailio's own oddities, kept so scripts behave the same: sht_inc and
sht_dec answer -255 when there is nothing to increment, sht_setxi/sht_setxs and sht_reset
answer 0 in KEMI, sht_rm answers 1 whether or not the item was there.
"""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext
from kemi_htable.registry import ITERATORS, MAX_ITERATORS, TABLES, Iterator, table
from kemi_htable.table import INC_FAILED, HTable, matcher

log = logging.getLogger("kemi.htable")


def _t(name: str, who: str) -> HTable | None:
    return table(name, who)


# ---- reading ------------------------------------------------------------------------------
def sht_get(ctx: MsgContext, htname: str, itname: str) -> int | str | None:
    """The item's value (an int or a string), nil when absent (initval when the table has
    one)."""
    t = _t(htname, "sht_get")
    return None if t is None else t.get(itname)


def sht_gete(ctx: MsgContext, htname: str, itname: str) -> int | str | None:
    """sht_get giving an empty string instead of nil."""
    value = sht_get(ctx, htname, itname)
    return "" if value is None else value


def sht_getw(ctx: MsgContext, htname: str, itname: str) -> int | str | None:
    """sht_get giving "<null>" instead of nil."""
    value = sht_get(ctx, htname, itname)
    return "<null>" if value is None else value


def sht_is_null(ctx: MsgContext, htname: str, itname: str) -> int:
    """1 when the item is absent, -1 when it has a value."""
    t = _t(htname, "sht_is_null")
    return 1 if t is None or t.get(itname) is None else -1


def sht_match_name(ctx: MsgContext, htname: str, op: str, mval: str) -> int:
    """1 when an item's name matches ``mval`` by ``op`` (eq, ne, re, sw, ew, in), else -1."""
    t = _t(htname, "sht_match_name")
    if t is None:
        return -1
    if op == "eq":  # the common case (the official example's ipban check): one lookup
        return 1 if t.has(mval) else -1
    test = matcher(op, mval)
    if test is None:
        return -1
    return 1 if any(test(k) for k, _ in t.snapshot()) else -1


def sht_match_str_value(ctx: MsgContext, htname: str, op: str, mval: str) -> int:
    """1 when a string item's value matches ``mval`` by ``op``, else -1."""
    t = _t(htname, "sht_match_str_value")
    test = matcher(op, mval) if t is not None else None
    if t is None or test is None:
        return -1
    return 1 if any(isinstance(v, str) and test(v) for _, v in t.snapshot()) else -1


# ---- writing ------------------------------------------------------------------------------
def sht_sets(ctx: MsgContext, htname: str, itname: str, itval: str) -> int:
    """Set the item to a string."""
    t = _t(htname, "sht_sets")
    return 1 if t is not None and t.set(itname, itval) else -1


def sht_seti(ctx: MsgContext, htname: str, itname: str, itval: int) -> int:
    """Set the item to an integer."""
    t = _t(htname, "sht_seti")
    return 1 if t is not None and t.set(itname, itval) else -1


def sht_setex(ctx: MsgContext, htname: str, itname: str, exval: int) -> int:
    """Let the item expire ``exval`` seconds from now (tables with autoexpire)."""
    t = _t(htname, "sht_setex")
    return 1 if t is not None and t.set_expire(itname, exval) else -1


def sht_setxs(ctx: MsgContext, htname: str, itname: str, itval: str, exval: int) -> int:
    """Set the item to a string expiring in ``exval`` seconds (0, or 1 in a table without
    autoexpire, as Kamailio answers)."""
    return _setx(_t(htname, "sht_setxs"), itname, itval, exval)


def sht_setxi(ctx: MsgContext, htname: str, itname: str, itval: int, exval: int) -> int:
    """Set the item to an integer expiring in ``exval`` seconds (as sht_setxs)."""
    return _setx(_t(htname, "sht_setxi"), itname, itval, exval)


def _setx(t: HTable | None, itname: str, itval: int | str, exval: int) -> int:
    """Kamailio answers 0 when the item got its own expiry, 1 in a table without autoexpire
    (where it is simply set)."""
    if t is None or not t.set_with_expire(itname, itval, exval):
        return -1
    return 0 if t.spec.autoexpire else 1


def sht_inc(ctx: MsgContext, htname: str, itname: str) -> int:
    """Add 1 to an integer item and return the new value; -255 when it is absent (and the
    table has no initval) or a string."""
    t = _t(htname, "sht_inc")
    value = t.add(itname, 1) if t is not None else None
    return INC_FAILED if value is None else value


def sht_dec(ctx: MsgContext, htname: str, itname: str) -> int:
    """Subtract 1 from an integer item and return the new value; -255 as for sht_inc."""
    t = _t(htname, "sht_dec")
    value = t.add(itname, -1) if t is not None else None
    return INC_FAILED if value is None else value


def sht_rm(ctx: MsgContext, htname: str, itname: str) -> int:
    """Remove the item (1 whether it was there or not)."""
    t = _t(htname, "sht_rm")
    if t is None:
        return -1
    t.delete(itname)
    return 1


def _rm(htname: str, op: str, val: str, by_name: bool, who: str) -> int:
    t = _t(htname, who)
    test = matcher(op, val) if t is not None else None
    if t is None or test is None:
        return -1
    if by_name:
        t.delete_where(lambda k, _v: not test(k))
    else:
        t.delete_where(lambda _k, v: not (isinstance(v, str) and test(v)))
    return 1


def sht_rm_name_re(ctx: MsgContext, htname: str, rexp: str) -> int:
    """Remove the items whose name matches the regular expression."""
    return _rm(htname, "re", rexp, True, "sht_rm_name_re")


def sht_rm_value_re(ctx: MsgContext, htname: str, rexp: str) -> int:
    """Remove the items whose string value matches the regular expression."""
    return _rm(htname, "re", rexp, False, "sht_rm_value_re")


def sht_rm_name(ctx: MsgContext, htname: str, op: str, val: str) -> int:
    """Remove the items whose name matches ``val`` by ``op`` (re, sw, ew, eq ...)."""
    return _rm(htname, op, val, True, "sht_rm_name")


def sht_rm_value(ctx: MsgContext, htname: str, op: str, val: str) -> int:
    """Remove the items whose string value matches ``val`` by ``op``."""
    return _rm(htname, op, val, False, "sht_rm_value")


def sht_reset(ctx: MsgContext, htname: str) -> int:
    """Remove every item of the table (0 as Kamailio answers in KEMI)."""
    t = _t(htname, "sht_reset")
    if t is None:
        return -1
    t.clear()
    return 0


def sht_lock(ctx: MsgContext, htname: str, itname: str) -> int:
    """Accepted for compatibility: every change of an item is already atomic across
    workers (use sht_inc/$shtinc for counters); a lock held across statements is not kept."""
    return 1 if _t(htname, "sht_lock") is not None else -1


def sht_unlock(ctx: MsgContext, htname: str, itname: str) -> int:
    """The counterpart of sht_lock (nothing to release)."""
    return 1 if _t(htname, "sht_unlock") is not None else -1


# ---- iterators ----------------------------------------------------------------------------
def sht_iterator_start(ctx: MsgContext, iname: str, hname: str) -> int:
    """Start walking the items of table ``hname`` under the name ``iname`` (a snapshot)."""
    t = _t(hname, "sht_iterator_start")
    if t is None:
        return -1
    if iname not in ITERATORS and len(ITERATORS) >= MAX_ITERATORS:
        log.error("sht_iterator_start: already %d iterators open", MAX_ITERATORS)
        return -1
    ITERATORS[iname] = Iterator(t, t.snapshot())
    return 1


def sht_iterator_next(ctx: MsgContext, iname: str) -> int:
    """Move to the next item ($shtitkey/$shtitval); -1 when there is none left."""
    it = ITERATORS.get(iname)
    if it is None:
        return -1
    it.pos += 1
    return 1 if it.current is not None else -1


def sht_iterator_end(ctx: MsgContext, iname: str) -> int:
    """Close the iterator."""
    return 1 if ITERATORS.pop(iname, None) is not None else -1


def _iter_item(iname: str) -> tuple[Iterator, str] | None:
    it = ITERATORS.get(iname)
    cur = it.current if it is not None else None
    return None if it is None or cur is None else (it, cur[0])


def sht_iterator_rm(ctx: MsgContext, iname: str) -> int:
    """Remove the iterator's current item."""
    found = _iter_item(iname)
    return 1 if found is not None and found[0].table.delete(found[1]) else -1


def sht_iterator_sets(ctx: MsgContext, iname: str, sval: str) -> int:
    """Set the iterator's current item to a string."""
    found = _iter_item(iname)
    return 1 if found is not None and found[0].table.set(found[1], sval) else -1


def sht_iterator_seti(ctx: MsgContext, iname: str, ival: int) -> int:
    """Set the iterator's current item to an integer."""
    found = _iter_item(iname)
    return 1 if found is not None and found[0].table.set(found[1], ival) else -1


def sht_iterator_setex(ctx: MsgContext, iname: str, exval: int) -> int:
    """Let the iterator's current item expire in ``exval`` seconds."""
    found = _iter_item(iname)
    return 1 if found is not None and found[0].table.set_expire(found[1], exval) else -1


def sht_print(ctx: MsgContext) -> int:
    """Log every item of every table at error level (debugging)."""
    for t in TABLES.values():
        for key, value in t.snapshot():
            log.error("htable %s: %s => %r", t.name, key, value)
    return 1
