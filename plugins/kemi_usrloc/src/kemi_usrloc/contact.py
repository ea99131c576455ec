"""One registered contact (Kamailio's ``ucontact_t``) and the rules every mode shares.

A contact is an immutable named tuple; a record (every contact of one AOR) is a list of them,
kept in Kamailio's order: highest q first, unspecified q (-1) last, older before newer at equal
q (or newest first with ``desc_time_order``). Times are whole Unix seconds, as Kamailio keeps
them; ``expires == 0`` means permanent.
"""

from __future__ import annotations

import itertools
import operator
import os
import time
from typing import Any, NamedTuple

#: Write-back states (``State`` in ul.dump).
CS_NEW, CS_SYNC, CS_DIRTY = 0, 1, 2
STATE_NAMES = {CS_NEW: "CS_NEW", CS_SYNC: "CS_SYNC", CS_DIRTY: "CS_DIRTY"}

#: Contact flags (``Flags``): FL_MEM = saved with save(..., 0x01), never written to a database.
FL_MEM = 1

#: q not given (Kamailio's Q_UNSPECIFIED); q values are kept in thousandths.
Q_UNSPECIFIED = -1
#: Every method (Kamailio's ALL_METHODS, printed unsigned by ul.dump).
ALL_METHODS = -1


class Contact(NamedTuple):
    """A binding of an AOR to a contact address, with what save() learnt from the REGISTER."""

    ruid: str
    aor: str
    c: str  # the contact URI
    expires: int  # absolute Unix time; 0 = permanent
    q: int = Q_UNSPECIFIED
    callid: str = "Default-Call-ID"
    cseq: int = 1
    flags: int = 0
    cflags: int = 0  # branch flags of the REGISTER, restored by lookup
    user_agent: str = ""
    received: str | None = None
    path: str | None = None
    socket: str | None = None
    methods: int = ALL_METHODS
    instance: str | None = None
    reg_id: int = 0
    server_id: int = 0
    tcpconn_id: int = -1
    keepalive: int = 0
    last_modified: int = 0
    state: int = CS_NEW

    def alive(self, now: float) -> bool:
        """Not expired at ``now`` (Kamailio's VALID_CONTACT)."""
        return self.expires == 0 or self.expires > now

    def remaining(self, now: float) -> int:
        return 0 if self.expires == 0 else max(int(self.expires - int(now)), 0)

    def same_data(self, other: Contact) -> bool:
        """Equal but for the write-back state."""
        return self[:-1] == other[:-1]


_seq = itertools.count(1)


def new_ruid() -> str:
    """A record unique id, unique across the server's processes (the pid is part of it)."""
    return f"uloc-{int(time.time()):x}-{os.getpid():x}-{next(_seq):x}"


def q_text(q: int) -> str:
    """q as a Contact parameter value: ``1``, ``0.5``, ``0.25``, ``0``."""
    whole, frac = divmod(q, 1000)
    return str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")


def q_number(q: int) -> int | float:
    """q as ul.dump shows it: -1 or a number (integral values without a fraction)."""
    if q == Q_UNSPECIFIED or q % 1000 == 0:
        return q if q == Q_UNSPECIFIED else q // 1000
    return q / 1000


def sort_key(c: Contact) -> int:
    return c.q if c.q != Q_UNSPECIFIED else -1


def place(contacts: list[Contact], new: Contact, desc_time_order: bool) -> list[Contact]:
    """``contacts`` with ``new`` inserted where Kamailio's ordering puts it."""
    if desc_time_order:
        return [new, *contacts]
    for i, old in enumerate(contacts):
        if sort_key(old) < sort_key(new):
            return [*contacts[:i], new, *contacts[i:]]
    return [*contacts, new]


#: the columns of a ``location`` row as row_values gives them
ROW_COLUMNS = ("ruid", "username", "domain", "contact", "received", "path", "expires", "q",
               "callid", "cseq", "last_modified", "flags", "cflags", "user_agent", "socket",
               "methods", "instance", "reg_id", "server_id", "connection_id", "keepalive",
               "partition")


def row_values(c: Contact, username: str, domain: str | None) -> tuple[Any, ...]:
    """A row of Kamailio's ``location`` table, the values of ROW_COLUMNS (a flush writes
    many such rows at once)."""
    return (c.ruid, username, domain, c.c, c.received, c.path, c.expires, q_column(c.q),
            c.callid, c.cseq, c.last_modified, c.flags, c.cflags, c.user_agent, c.socket,
            c.methods, c.instance, c.reg_id, c.server_id, c.tcpconn_id, c.keepalive, 0)


def to_row(c: Contact, username: str, domain: str | None) -> dict[str, Any]:
    """A row of Kamailio's ``location`` table."""
    return dict(zip(ROW_COLUMNS, row_values(c, username, domain), strict=True))


#: (field index, column) of the fields stored as they are; q is converted (q_column), the AOR
#: (username, domain) never changes for a ruid, the write-back state is not stored.
_PLAIN_COLUMNS = tuple((Contact._fields.index(field), column) for field, column in (
    ("c", "contact"), ("received", "received"), ("path", "path"), ("expires", "expires"),
    ("callid", "callid"), ("cseq", "cseq"), ("last_modified", "last_modified"),
    ("flags", "flags"), ("cflags", "cflags"), ("user_agent", "user_agent"),
    ("socket", "socket"), ("methods", "methods"), ("instance", "instance"),
    ("reg_id", "reg_id"), ("server_id", "server_id"), ("tcpconn_id", "connection_id"),
    ("keepalive", "keepalive")))


def q_column(q: int) -> float:
    return -1.0 if q == Q_UNSPECIFIED else q / 1000


#: the fields of _PLAIN_COLUMNS picked out of a contact, and their column names, in that order
_plain_fields = operator.itemgetter(*(i for i, _ in _PLAIN_COLUMNS))
_plain_names = tuple(column for _, column in _PLAIN_COLUMNS)
_ne = operator.ne


def changed_row(before: Contact, after: Contact) -> dict[str, Any]:
    """The columns of ``before``'s row that ``after`` changes (what to_row of each would give
    apart, without building either row: a refresh changes four or five). Compared field by
    field in C (itemgetter, map, compress): every write-through refresh makes one."""
    values = _plain_fields(after)
    out: dict[str, Any] = dict(itertools.compress(zip(_plain_names, values, strict=True),
                                                  map(_ne, _plain_fields(before), values)))
    if before.q != after.q:
        out["q"] = q_column(after.q)
    return out


def from_row(row: dict[str, Any], aor: str, state: int = CS_SYNC) -> Contact:
    """A contact read back from the ``location`` table."""
    q = row.get("q")
    return Contact(
        ruid=row["ruid"], aor=aor, c=row["contact"], expires=int(row.get("expires") or 0),
        q=Q_UNSPECIFIED if q is None or q < 0 else round(float(q) * 1000),
        callid=row.get("callid") or "", cseq=int(row.get("cseq") or 0),
        flags=int(row.get("flags") or 0), cflags=int(row.get("cflags") or 0),
        user_agent=row.get("user_agent") or "", received=row.get("received") or None,
        path=row.get("path") or None, socket=row.get("socket") or None,
        methods=ALL_METHODS if row.get("methods") is None else int(row["methods"]),
        instance=row.get("instance") or None, reg_id=int(row.get("reg_id") or 0),
        server_id=int(row.get("server_id") or 0),
        tcpconn_id=-1 if row.get("connection_id") is None else int(row["connection_id"]),
        keepalive=int(row.get("keepalive") or 0),
        last_modified=int(row.get("last_modified") or 0), state=state)
