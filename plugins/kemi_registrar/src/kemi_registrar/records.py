"""The rest of registrar's script functions: unregister, reg_fetch_contacts and ``$ulc``,
add_sock_hdr, set_q_override."""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import MsgContext, PvValue
from kemi_registrar.aor import AorError, aor_of
from kemi_registrar.save import Q_OVERRIDE
from kemi_registrar.state import Profile, state
from kemi_usrloc.contact import Contact, q_number
from kemi_usrloc.domain import UsrlocDbError

log = logging.getLogger("kemi.registrar")


def _aor(uri: str) -> str:
    st = state()
    return aor_of(uri, st.ul.use_domain, st.params.case_sensitive, st.params.realm_prefix)


def unregister(ctx: MsgContext, table: str, uri: str, ruid: str = "") -> int:
    """Remove every contact of ``uri`` (or only the one with ``ruid``): 1 done, -1 bad URI,
    -2 error, -3 not found."""
    st = state()
    dom = st.ul.domain(table)
    if not uri and ruid and st.ul.db_mode == 3:
        return _unregister_ruid_anywhere(dom, ruid)
    try:
        aor = _aor(uri)
    except AorError:
        return -1

    def drop(old: list[Contact]) -> tuple[list[Contact] | None, bool]:
        kept = [c for c in old if c.ruid != ruid] if ruid else []
        return (kept if len(kept) != len(old) else None), len(kept) != len(old)

    try:
        removed = dom.update(aor, drop)
    except UsrlocDbError:
        return -2
    return 1 if removed else -3


def _unregister_ruid_anywhere(dom: Any, ruid: str) -> int:
    for aor, contacts in dom.records():
        if any(c.ruid == ruid for c in contacts):
            try:
                dom.update(aor, lambda old: ([c for c in old if c.ruid != ruid], True))
            except UsrlocDbError:
                return -2
            return 1
    return -3


def reg_fetch_contacts(ctx: MsgContext, table: str, uri: str, profile: str) -> int:
    """Load the contacts of ``uri`` into ``$ulc(profile=>...)``: 1 found, -1 none."""
    st = state()
    st.profiles.pop(profile, None)
    try:
        aor = _aor(uri)
        contacts = st.ul.domain(table).get(aor)
    except (AorError, UsrlocDbError):
        return -1
    now = ctx.core.clock.wall()
    live = [c for c in contacts if c.alive(now)]
    if not live:
        return -1
    st.profiles[profile] = Profile(aor, table, st.ul.aor_hash(aor), live)
    return 1


def reg_free_contacts(ctx: MsgContext, profile: str) -> int:
    state().profiles.pop(profile, None)
    return 1


# ---- $ulc(profile=>attr) --------------------------------------------------------------
def parse_ulc(arg: str) -> tuple[str, str]:
    profile, sep, attr = arg.partition("=>")
    if not sep:
        raise ValueError(f"$ulc({arg}): expected profile=>attribute")
    return profile.strip(), attr.strip()


def _contact_attr(c: Contact, attr: str, now: float) -> PvValue:
    values: dict[str, Any] = {
        "addr": c.c, "path": c.path, "received": c.received,
        "expires": c.expires, "callid": c.callid, "q": c.q, "cseq": c.cseq,
        "flags": c.flags, "cflags": c.cflags, "user_agent": c.user_agent,
        "socket": c.socket, "modified": c.last_modified,
        "methods": c.methods & 0xFFFFFFFF, "ruid": c.ruid, "regid": c.reg_id,
        "instance": c.instance, "conid": c.tcpconn_id if c.tcpconn_id >= 0 else None,
        "server_id": c.server_id,
    }
    if attr not in values:
        return None
    v = values[attr]
    if attr == "q":
        n = q_number(c.q)
        return int(n) if isinstance(n, int) else str(n)
    return v


def ulc_get(ctx: MsgContext, arg: tuple[str, str], index: int | None = 0) -> PvValue:
    profile, attr = arg
    prof = state().profiles.get(profile)
    if prof is None:
        return None
    if attr == "aor":
        return prof.aor
    if attr == "domain":
        return prof.domain
    if attr == "aorhash":
        return prof.aorhash
    if attr == "count":
        return len(prof.contacts)
    i = 0 if index is None else index
    if i < 0:
        i += len(prof.contacts)
    if not 0 <= i < len(prof.contacts):
        return None
    return _contact_attr(prof.contacts[i], attr, ctx.core.clock.wall())


def ulc_value(ctx: MsgContext, arg: tuple[str, str]) -> PvValue:
    return ulc_get(ctx, arg, 0)


# ---- misc ---------------------------------------------------------------------------------
def add_sock_hdr(ctx: MsgContext, name: str) -> int:
    """Add ``name: proto:ip:port`` (the socket the REGISTER came in on) to the request."""
    rcv = ctx.rcv
    host = f"[{rcv.dst_ip}]" if ":" in rcv.dst_ip else rcv.dst_ip
    try:
        ctx.msg.append_header(name, f"{rcv.proto}:{host}:{rcv.dst_port}")
    except ValueError as exc:
        log.error("add_sock_hdr: %s", exc)
        return -1
    return 1


def set_q_override(ctx: MsgContext, q: str) -> int:
    """The q the next save() of this message gives its contacts ("0.5", or 500)."""
    try:
        value = float(q)
    except ValueError:
        return -1
    ctx.mod_state[Q_OVERRIDE] = round(value * 1000) if value <= 1 else int(value)
    return 1
