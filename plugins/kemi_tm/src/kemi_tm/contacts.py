"""Serial forking by q value: t_load_contacts / t_next_contacts (Kamailio's "standard" mode).

t_load_contacts moves the destination set (R-URI and appended branches) into the xavp named
by modparam contacts_avp, highest q first; each t_next_contacts then takes the contacts of the
next q value: the first becomes the R-URI, the others branches, so t_relay forks to them in
parallel; in failure routes that gives serial forking group by group.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import Branch, MsgContext

log = logging.getLogger("kemi.tm")

_UNSPECIFIED_Q = 1000  # Kamailio treats a missing q as 1.0


def _avp_name(ctx: MsgContext) -> str:
    from kemi_tm.service import TmService

    return str(ctx.core.require("tm", TmService).settings.contacts_avp)


def _q(q: int) -> int:
    return _UNSPECIFIED_Q if q < 0 else q


def t_load_contacts(ctx: MsgContext) -> int:
    """Store the destination set by q; with one destination or all q equal nothing is done."""
    if not ctx.msg.is_request:
        return -1
    if not ctx.branches:
        return 1
    entries: list[dict[str, Any]] = [{"uri": ctx.msg.ruri, "dst_uri": ctx.dst_uri,
                                      "q": _UNSPECIFIED_Q, "path": None, "flags": ctx.bflags}]
    entries += [{"uri": b.uri, "dst_uri": b.dst_uri, "q": _q(b.q), "path": b.path,
                 "flags": b.flags} for b in ctx.branches]
    if len({e["q"] for e in entries}) == 1:
        return 1
    entries.sort(key=lambda e: -e["q"])  # stable: equal q keep their order
    ctx.xavps[_avp_name(ctx)] = entries
    ctx.branches.clear()
    return 1


def t_load_contacts_mode(ctx: MsgContext, mode: int) -> int:
    """Mode 0 is t_load_contacts; the proportional mode (1) is not supported."""
    if mode != 0:
        log.error("t_load_contacts: mode %d (proportional) is not supported", mode)
        return -1
    return t_load_contacts(ctx)


def t_next_contacts(ctx: MsgContext) -> int:
    """Next q group into R-URI and branches; -1 when no contacts are left."""
    entries = ctx.xavps.get(_avp_name(ctx))
    if not entries:
        return -1
    q = entries[0]["q"]
    group = [e for e in entries if e["q"] == q]
    rest = entries[len(group):]
    if rest:
        ctx.xavps[_avp_name(ctx)] = rest
    else:
        del ctx.xavps[_avp_name(ctx)]
    first, others = group[0], group[1:]
    ctx.msg.set_ruri(first["uri"])
    ctx.dst_uri = first["dst_uri"]
    ctx.branches.clear()
    for e in others:
        ctx.branches.append(Branch(uri=e["uri"], dst_uri=e["dst_uri"], path=e["path"], q=e["q"],
                                   flags=e["flags"] or 0))
    return 1


def t_next_contact_flow(ctx: MsgContext) -> int:
    """Not supported: kemi has no SIP outbound (RFC 5626) flows."""
    log.error("t_next_contact_flow: SIP outbound flows are not supported")
    return -1
