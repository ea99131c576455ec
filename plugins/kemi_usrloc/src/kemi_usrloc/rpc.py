"""usrloc's control commands (``ul.*``), answering in Kamailio 5.6's shapes and words."""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, KemiError
from kemi_usrloc.contact import (
    ALL_METHODS,
    STATE_NAMES,
    Contact,
    new_ruid,
    place,
    q_number,
)
from kemi_usrloc.domain import DB_ONLY, NO_DB, Domain, UsrlocDbError
from kemi_usrloc.service import Usrloc

NOT_SET = "[not set]"


def register(core: Core, ul: Usrloc) -> None:
    def cmd(name: str, fn: Any, doc: str) -> None:
        core.add_rpc(name, lambda _core, params: fn(ul, params), doc)

    cmd("ul.dump", dump, "Dump the location tables (param 'brief': AORs only)")
    cmd("ul.lookup", lookup, "Look up one AOR in a location table: table AOR")
    cmd("ul.rm", rm, "Delete an AOR and its contacts: table AOR")
    cmd("ul.rm_contact", rm_contact, "Delete one contact of an AOR: table AOR contact")
    cmd("ul.flush", flush, "Flush the memory cache to the database (db_mode 2)")
    cmd("ul.add", add, "Add a contact: table AOR contact expires q path flags cflags methods "
                       "[received [socket]]")
    cmd("ul.db_users", db_users, "Number of AORs with unexpired contacts in a table")
    cmd("ul.db_contacts", db_contacts, "Number of unexpired contacts in a table")
    cmd("ul.db_expired_contacts", db_expired, "Number of expired contacts in a table")


def _need(params: list[Any], n: int, what: str) -> list[str]:
    if len(params) < n:
        raise KemiError(f"Not enough parameters ({what})")
    return [str(p) for p in params]


def _domain(ul: Usrloc, name: str) -> Domain:
    if name not in ul.domains and name not in {d.name for d in ul.known_domains()}:
        raise KemiError("Domain table not found")
    return ul.domain(name)


def _aor(ul: Usrloc, text: str) -> str:
    aor = text.strip()
    if aor.lower().startswith(("sip:", "sips:")):
        aor = aor.split(":", 1)[1]
    if not ul.use_domain:
        aor = aor.split("@", 1)[0]
    return aor.lower()


def contact_info(c: Contact, now: float) -> dict[str, Any]:
    if c.expires == 0:
        expires: int | str = "permanent"
    elif not c.alive(now):
        expires = "expired"
    else:
        expires = c.remaining(now)
    return {"Contact": {
        "Address": c.c, "Expires": expires, "Q": q_number(c.q), "Call-ID": c.callid,
        "CSeq": c.cseq, "User-Agent": c.user_agent, "Received": c.received or NOT_SET,
        "Path": c.path or NOT_SET, "State": STATE_NAMES.get(c.state, "CS_UNKNOWN"),
        "Flags": c.flags, "CFlags": c.cflags, "Socket": c.socket or NOT_SET,
        "Methods": c.methods & 0xFFFFFFFF, "Ruid": c.ruid, "Instance": c.instance or NOT_SET,
        "Reg-Id": c.reg_id, "Server-Id": c.server_id, "Tcpconn-Id": c.tcpconn_id,
        "Keepalive": c.keepalive, "Last-Keepalive": c.last_modified, "KA-Roundtrip": 0,
        "Last-Modified": c.last_modified}}


def dump(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    brief = bool(params) and str(params[0]) == "brief"
    now = ul.now()
    domains = []
    for dom in ul.known_domains():
        aors: list[dict[str, Any]] = []
        slots: dict[int, int] = {}
        for aor, contacts in dom.records():
            slot = ul.aor_hash(aor) % ul.hash_size
            slots[slot] = slots.get(slot, 0) + 1
            if brief:
                aors.append({"AoR": aor})
            else:
                aors.append({"Info": {"AoR": aor, "HashID": ul.aor_hash(aor),
                                      "Contacts": [contact_info(c, now) for c in contacts]}})
        domains.append({"Domain": {"Domain": dom.name, "Size": ul.hash_size, "AoRs": aors,
                                   "Stats": {"Records": len(aors),
                                             "Max-Slots": max(slots.values(), default=0)}}})
    return {"Domains": domains}


def lookup(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    table, aor = _need(params, 2, "table and AOR to lookup")[:2]
    dom = _domain(ul, table)
    key = _aor(ul, aor)
    contacts = dom.get(key)
    if not contacts:
        raise KemiError("AOR not found in location table")
    now = ul.now()
    return {"AoR": key, "Contacts": [contact_info(c, now) for c in contacts]}


def rm(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    table, aor = _need(params, 2, "table and AOR to lookup")[:2]
    try:
        _domain(ul, table).delete(_aor(ul, aor))
    except UsrlocDbError:
        raise KemiError("Operation failed")
    return {}


def rm_contact(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    table, aor, uri = _need(params, 3, "table, AOR and contact")[:3]
    dom = _domain(ul, table)
    key = _aor(ul, aor)

    def drop(old: list[Contact]) -> tuple[list[Contact] | None, int]:
        kept = [c for c in old if c.c != uri]
        return (kept if len(kept) != len(old) else None), len(old) - len(kept)

    if not dom.get(key):
        raise KemiError("AOR not found in location table")
    try:
        removed = dom.update(key, drop)
    except UsrlocDbError:
        raise KemiError("Internal error (can't delete contact)")
    if not removed:
        raise KemiError("Contact not found")
    return {}


def flush(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    ul.flush()
    return {}


def _opt(value: str) -> str | None:
    return None if value in ("", "0", ".") else value


def add(ul: Usrloc, params: list[Any]) -> dict[str, Any]:
    p = _need(params, 9, "or wrong format")
    table, aor, uri, expires_s, q_s, path, flags_s, cflags_s, methods_s = p[:9]
    try:
        expires, flags, cflags, methods = (int(expires_s), int(flags_s), int(cflags_s),
                                           int(methods_s))
        q = round(float(q_s) * 1000)
    except ValueError:
        raise KemiError("Not enough parameters or wrong format")
    received = _opt(p[9]) if len(p) > 9 else None
    sock = _opt(p[10]) if len(p) > 10 else None
    dom = ul.domain(table)
    key = _aor(ul, aor)
    now = int(ul.now())
    new = Contact(ruid=new_ruid(), aor=key, c=uri, expires=now + expires if expires > 0 else 0,
                  q=q if q >= 0 else -1, callid="dfjrewr12386fd6-343@kamailio.rpc", cseq=1,
                  flags=flags, cflags=cflags, user_agent="kamailio SIP Router - RPC Server",
                  received=received, path=_opt(path), socket=sock,
                  methods=methods if methods else ALL_METHODS, last_modified=now)

    def put(old: list[Contact]) -> tuple[list[Contact], None]:
        same = [c for c in old if c.c == uri]
        if same:
            kept = [c for c in old if c.c != uri]
            return place(kept, new._replace(ruid=same[0].ruid), ul.desc_time_order), None
        return place(old, new, ul.desc_time_order), None

    try:
        dom.update(key, put)
    except UsrlocDbError:
        raise KemiError("Operation failed")
    return {}


def _count(ul: Usrloc, params: list[Any], what: str) -> int:
    table = _need(params, 1, "table")[0]
    if ul.db_mode == NO_DB:
        raise KemiError("Not available with db_mode 0")
    now = ul.now()
    dom = _domain(ul, table) if ul.db_mode != DB_ONLY else ul.domain(table)
    records = list(dom.records())
    if what == "users":
        return sum(1 for _, cs in records if any(c.alive(now) for c in cs))
    if what == "contacts":
        return sum(1 for _, cs in records for c in cs if c.alive(now))
    return sum(1 for _, cs in records for c in cs if not c.alive(now))


def db_users(ul: Usrloc, params: list[Any]) -> int:
    return _count(ul, params, "users")


def db_contacts(ul: Usrloc, params: list[Any]) -> int:
    return _count(ul, params, "contacts")


def db_expired(ul: Usrloc, params: list[Any]) -> int:
    return _count(ul, params, "expired")
