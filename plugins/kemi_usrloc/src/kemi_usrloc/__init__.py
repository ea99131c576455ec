"""usrloc.so: the user location tables (Kamailio's usrloc module).

Registrations live in the server's shared store (``kemi_core.api.shared_store``): a save in one
worker is what a lookup in any other worker reads at its very next message. With a database
(``db_url``), ``db_mode`` chooses as in Kamailio:

- 0: memory only (the shared store);
- 1: write-through: every change is written to the database before save() answers;
- 2: write-back: changes are written by the timer every ``timer_interval`` seconds, and when
  the server stops;
- 3: database only: no memory cache; every lookup and save is a query (several servers can
  share one table).

In modes 1 and 2 the ``location`` table (and those named by ``preload``) are loaded at start.
The expiry timer runs in the main process only. usrloc exports no script functions (registrar
does); its service is ``core.require("usrloc", Usrloc)`` (:class:`kemi_usrloc.service.Usrloc`). RPCs:
``ul.dump``, ``ul.lookup``, ``ul.rm``, ``ul.rm_contact``, ``ul.add``, ``ul.flush``,
``ul.db_users``, ``ul.db_contacts``, ``ul.db_expired_contacts``. Statistics as Kamailio's
(``kamcmd stats.get_statistics usrloc:``): ``registered_users`` and, per table,
``location_users``, ``location_contacts``, ``location_expires`` (:mod:`kemi_usrloc.stats`).
"""

from __future__ import annotations

import logging

from kemi_core.api import Core, DbError, KemiExport, ModuleError, hookimpl
from kemi_usrloc import rpc
from kemi_usrloc.domain import NO_DB
from kemi_usrloc.service import Usrloc

log = logging.getLogger("kemi.usrloc")

MODULE = "usrloc"
DEFAULT_DB_URL = "mysql://kamailio:kamailiorw@localhost/kamailio"

#: (name, kind, default, what it does here)
PARAMS: tuple[tuple[str, type, object, str], ...] = (
    ("db_url", str, DEFAULT_DB_URL, "database URL (db_mode 1-3)"),
    ("db_mode", int, 0, "0 memory, 1 write-through, 2 write-back, 3 database only"),
    ("use_domain", int, 0, "AOR is user@domain instead of user"),
    ("desc_time_order", int, 0, "contacts newest first instead of by q"),
    ("timer_interval", int, 60, "seconds between expiry (and write-back flush) runs"),
    ("nat_bflag", int, -1, "branch flag marking a contact behind NAT"),
    ("matching_mode", int, 0, "0 contact, 1 contact+Call-ID, 2 contact+path, 3 Call-ID"),
    ("cseq_delay", int, 20, "seconds a REGISTER with the same Call-ID/CSeq is a retransmission"),
    ("hash_size", int, 10, "2^hash_size slots (reported by ul.dump)"),
    ("db_load", int, 1, "load the tables from the database at start (db_mode 1, 2)"),
    ("rm_expired_delay", int, 0, "seconds expired rows stay in the database (db_mode 3)"),
    ("server_id_filter", int, 0, "expire (db_mode 3) and load (db_mode 1, 2) only the rows of "
                                 "this server's server_id"),
    ("version_table", int, 1, "check the table version at start"),
    ("xavp_contact", str, "", "accepted; contact xavps are not stored"),
)
#: Kamailio parameters accepted for compatibility whose work kemi does differently or not yet.
ACCEPTED = ("timer_procs", "db_insert_update", "fetch_rows", "db_update_as_insert",
            "db_check_update", "db_ops_ruid", "handle_lost_tcp", "close_expired_tcp",
            "expires_type", "db_raw_fetch_type", "db_insert_null", "skip_remote_socket",
            "db_timer_clean", "ka_mode", "ka_filter", "ka_timeout",
            "ka_loglevel", "load_rank", "db_clean_tcp")
ACCEPTED_STR = ("ka_method", "ka_from", "ka_domain", "ka_logmsg")


class _State:
    ul: Usrloc | None = None


_state = _State()


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    core.declare_param(MODULE, "preload", str, multi=True, doc="tables to load at start")
    for name in ACCEPTED:
        core.declare_param(MODULE, name, int, 0, doc="accepted (no effect in kemi)")
    for name in ACCEPTED_STR:
        core.declare_param(MODULE, name, str, "", doc="accepted (no effect in kemi)")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return []  # as Kamailio's usrloc: registrar exports the script functions


@hookimpl
def mod_init(core: Core) -> None:
    ul = Usrloc(core)
    if ul.db is not None and int(core.modparam(MODULE, "version_table")):
        try:
            ul.db.check_version(ul.layout("location"), user=MODULE)
        except DbError as exc:
            raise ModuleError(str(exc))
    if ul.db_mode == NO_DB or int(core.modparam(MODULE, "db_load")):
        for name in ["location", *core.modparam(MODULE, "preload")]:
            ul.domain(name)
    core.provide("usrloc", ul)
    rpc.register(core, ul)
    ul.start_timer()
    _state.ul = ul


@hookimpl
def mod_destroy() -> None:
    """Write-back: what the timer has not written yet is flushed before the server stops."""
    ul = _state.ul
    if ul is not None:
        try:
            ul.flush()
        except Exception:
            log.exception("usrloc: final flush failed")
