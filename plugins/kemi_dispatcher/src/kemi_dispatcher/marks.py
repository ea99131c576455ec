"""Destination states set from scripts and RPCs (ds_mark_dst, dispatcher.set_state) and the
questions scripts ask about the list (ds_is_from_list, ds_list_exists, ds_is_active)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kemi_core.api import MsgContext
from kemi_core.sip import SipParseError, parse_uri
from kemi_dispatcher.destinations import INACTIVE, TRYING, Dest, make_dest
from kemi_dispatcher.select import set_var
from kemi_dispatcher.state import SetState, letters, parse_state, usable

if TYPE_CHECKING:
    from kemi_dispatcher.service import DsService

log = logging.getLogger("kemi.dispatcher")


def mark(svc: DsService, setid: int, uri: str | None, state_text: str,
         source: str = "script") -> int:
    """Set the state of destination ``uri`` (every destination of the set when None): 1 done,
    -1 bad state or no such destination. "t" counts a failure and turns the destination
    inactive at ds_probing_threshold failures."""
    wanted = parse_state(state_text)
    if wanted is None:
        log.error("dispatcher: bad state %r", state_text)
        return -1
    dset = svc.state.current().sets.get(setid)
    if dset is None:
        return -1
    indexes = [i for i, d in enumerate(dset.dests) if uri is None or d.uri == uri]
    if not indexes:
        return -1
    threshold = svc.settings.probing_threshold

    def change(st: SetState) -> SetState:
        for i in indexes:
            old = st.flags[i]
            if wanted & TRYING:
                fails = st.fails[i] + 1
                new = wanted
                if fails >= threshold:
                    new = (wanted & ~TRYING) | INACTIVE
                st = st.with_dest(i, flags=new, fails=fails, oks=0)
            elif wanted & INACTIVE:
                st = st.with_dest(i, flags=wanted, oks=0)
            else:
                st = st.with_dest(i, flags=wanted, fails=0 if not wanted else st.fails[i])
            if letters(old)[0] != letters(st.flags[i])[0]:
                log.info("dispatcher: %s %s of set %d: %s -> %s", source, dset.dests[i].uri,
                         setid, letters(old), letters(st.flags[i]))
        return st

    return 1 if svc.state.update_set(setid, change) is not None else -1


# ---- matching a source or a URI against the list -------------------------------------------
def _matches(d: Dest, ip: str, port: int, proto: str, mode: int) -> bool:
    if not d.ip or d.ip != ip:
        return False
    if not mode & 1 and d.port != port:
        return False
    return bool(mode & 2) or d.proto == proto


def is_from_list(svc: DsService, ctx: MsgContext, group: int = -1, mode: int = 2,
                 uri: str = "") -> int:
    """1 when the source address (or ``uri``) is a destination of ``group`` (-1: any set)."""
    if uri:
        try:
            probe = make_dest(0, uri)
        except Exception:
            log.error("dispatcher: ds_is_from_list: bad URI %r", uri)
            return -1
        ip, port, proto = probe.ip, probe.port, probe.proto
    else:
        ip, port, proto = ctx.rcv.src_ip, ctx.rcv.src_port, ctx.rcv.proto
    dslist = svc.state.current()
    for dset in dslist:
        if group >= 0 and dset.setid != group:
            continue
        st = svc.state.set_state(dset.setid) if mode & 4 else None
        for i, d in enumerate(dset.dests):
            if not _matches(d, ip, port, proto, mode):
                continue
            if st is not None and not usable(st.flags[i]):
                continue
            set_var(ctx, svc.settings.setid_pvname, dset.setid, "setid_pvname")
            set_var(ctx, svc.settings.attrs_pvname, d.attrs, "attrs_pvname")
            return 1
    return -1


def list_exists(svc: DsService, group: int) -> int:
    return 1 if group in svc.state.current().sets else -1


def is_active(svc: DsService, group: int, uri: str = "") -> int:
    """1 when the set has an active destination (``uri`` given: that one is active)."""
    dset = svc.state.current().sets.get(group)
    st = svc.state.set_state(group)
    if dset is None or st is None:
        return -1
    if uri:
        try:
            parse_uri(uri)
        except SipParseError:
            return -1
    for i, d in enumerate(dset.dests):
        if (not uri or d.uri == uri) and not st.flags[i] & (INACTIVE | TRYING) and usable(st.flags[i]):
            return 1
    return -1
