"""The usrloc service other modules bind to (Kamailio's bind_usrloc): ``core.require("usrloc", Usrloc)``.

Made in the main process at mod_init, inherited by every worker. It knows the parameters, the
database (db_mode 1-3) and the location tables ("domains"), and runs the expiry/flush timer
in the main process only, so expiry happens once per server, never once per worker.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from kemi_core.api import Core, Database, DbError, ModuleError, db, open_db, shared_store
from kemi_usrloc import stats, sync
from kemi_usrloc.contact import CS_SYNC, Contact, from_row, sort_key
from kemi_usrloc.domain import (
    DB_ONLY,
    EXPIRES_FIELD,
    NO_DB,
    STATE_FIELD,
    WRITE_BACK,
    DbDomain,
    Domain,
    MemDomain,
    store_key,
)

log = logging.getLogger("kemi.usrloc")

META_TABLE = "usrloc:meta"
#: Seconds between looks at a database sync running in the database thread.
POLL = 0.05
#: Seconds a flush waits for a sync already running.
FLUSH_WAIT = 10.0


class Usrloc:
    """The location tables of this server and the rules every mode shares."""

    def __init__(self, core: Core) -> None:
        param = lambda name: core.modparam("usrloc", name)  # noqa: E731
        self.core = core
        self.db_mode = int(param("db_mode"))
        self.use_domain = bool(param("use_domain"))
        self.desc_time_order = bool(param("desc_time_order"))
        self.matching_mode = int(param("matching_mode"))
        self.cseq_delay = int(param("cseq_delay"))
        self.timer_interval = max(int(param("timer_interval")), 1)
        self.rm_expired_delay = int(param("rm_expired_delay"))
        #: the core's server_id; with server_id_filter, this server expires and loads only the
        #: rows saved with it (Kamailio's rule for nodes sharing one table)
        self.server_id = int(core.config.extra.get("server_id") or 0)
        self.server_id_filter = bool(int(param("server_id_filter")))
        self.hash_size = 1 << max(min(int(param("hash_size")), 16), 1)
        nat_bflag = int(param("nat_bflag"))
        self.nat_bflag_mask = (1 << nat_bflag) if nat_bflag >= 0 else 0
        self.db_url = str(param("db_url"))
        self.db: Database | None = None
        self.domains: dict[str, Domain] = {}
        self.expired_handlers: list[Callable[[str, Contact], None]] = []
        self._inflight: tuple[Future[int], list[sync.Batch]] | None = None
        #: when the timer last collected (the core's clock)
        self._collected_at = 0.0
        if self.db_mode not in (0, 1, 2, 3):
            raise ModuleError(f"usrloc: db_mode must be 0, 1, 2 or 3, not {self.db_mode}")
        if self.db_mode != NO_DB:
            self.db = open_db(core, self.db_url, user="usrloc")
        self.meta = None if self.db_mode == DB_ONLY else shared_store(core).table(META_TABLE)
        #: usrloc:registered_users (each table's counters add to it)
        self.registered_users = stats.registered_users(core)

    # ---- AORs --------------------------------------------------------------------------
    def split_aor(self, aor: str) -> tuple[str, str | None]:
        """``(username, domain)`` of an AOR (domain None without use_domain)."""
        if not self.use_domain:
            return aor, None
        user, sep, domain = aor.rpartition("@")
        return (user, domain) if sep else (aor, None)

    def aor_of_row(self, row: dict[str, Any]) -> str:
        if self.use_domain and row.get("domain"):
            return f"{row['username']}@{row['domain']}"
        return str(row["username"])

    def aor_hash(self, aor: str) -> int:
        return zlib.crc32(aor.encode())

    def ordered(self, contacts: list[Contact]) -> list[Contact]:
        if self.desc_time_order:
            return sorted(contacts, key=lambda c: c.last_modified, reverse=True)
        return sorted(contacts, key=sort_key, reverse=True)

    # ---- tables ------------------------------------------------------------------------
    def layout(self, name: str) -> db.Table:
        base = db.tables.LOCATION
        return base if name == base.name else base.renamed(name)

    def domain(self, name: str) -> Domain:
        """The location table ``name`` (registered on first use, in any process)."""
        dom = self.domains.get(name)
        if dom is not None:
            return dom
        if self.db_mode == DB_ONLY:
            dom = DbDomain(self, name)
        else:
            store = shared_store(self.core)
            # the C table (its marks: the contacts' expiry and, with write-back, sync state)
            records = store.shm_table(f"usrloc:{name}", EXPIRES_FIELD,
                                      STATE_FIELD if self.db_mode == WRITE_BACK else -1, CS_SYNC)
            if records is None:  # (not built)
                records = store.table(f"usrloc:{name}")
            records.keep_decoded()  # records are read and replaced whole, never changed in place
            dom = MemDomain(self, name, records, store.table(f"usrloc:{name}:deleted"))
            assert self.meta is not None
            if self.meta.add(f"domain:{name}", True) and self.db_mode != NO_DB:
                self._load(dom)  # the first process to use this table loads it
        self.domains[name] = dom
        return dom

    def known_domains(self) -> list[Domain]:
        """Every table any process registered (the main process's timer and RPCs)."""
        if self.meta is not None:
            for key in self.meta.keys("domain:"):
                self.domain(key[len("domain:"):])
        return list(self.domains.values())

    def _load(self, dom: MemDomain) -> None:
        """Preload a table from the database (db_mode 1 and 2)."""
        assert self.db is not None
        where = {"server_id": self.server_id} if self.server_id_filter else None
        try:
            rows = self.db.query(self.layout(dom.name), where, order_by="id")
        except DbError as exc:
            raise ModuleError(f"usrloc: cannot load table {dom.name}: {exc}")
        records: dict[str, list[Contact]] = {}
        for row in rows:
            aor = self.aor_of_row(row)
            records.setdefault(aor, []).append(from_row(row, aor, CS_SYNC))
        dom.load({store_key(aor): [tuple(c) for c in self.ordered(contacts)]
                  for aor, contacts in records.items()})
        dom.stats.loaded(len(records), len(rows))
        log.info("usrloc: %d contacts of %d AORs loaded from table %s", len(rows),
                 len(records), dom.name)

    # ---- time and the timer (once per server) ----------------------------------------------
    def now(self) -> float:
        """Wall-clock seconds, the scale of a contact's ``expires`` (the core's clock: a test
        router's advance() ages registrations)."""
        return self.core.clock.wall()

    def start_timer(self) -> None:
        """Expire contacts (and, with a database, sync or delete rows) every timer_interval, once
        for the whole server: the core's housekeeping."""
        self.core.add_housekeeping(self.timer, self.timer_interval)

    def timer(self) -> float | None:
        """One timer run; the database statements go to the database thread, and the next
        run comes soon to see them done (the housekeeping's ``fn`` may ask for that)."""
        if self._inflight is not None:
            if not self._inflight[0].done():
                return POLL
            self._finish()
            # The next collect comes one interval after this one's, not at once: what changed
            # while a slow flush ran waits for the next flush (else a flush taking longer than
            # the REGISTERs between two becomes one write per REGISTER, back to back).
            wait = self._collected_at + self.timer_interval - self.now()
            if wait > POLL:
                return wait
        self._collected_at = self.now()
        batches = [b for b in (d.collect(self.now()) for d in self.known_domains()) if not b.empty]
        if not batches or self.db is None:
            return None
        self._inflight = (self.db.submit(sync.write, self.db, batches), batches)
        return POLL

    def get_all_contacts(self, flags: int = 0, part_idx: int = 0, part_max: int = 1,
                         now: float | None = None) -> list[Contact]:
        """Every live contact of every table (Kamailio's get_all_ucontacts, what nathelper's
        pinger reads): with ``flags``, only contacts whose branch flags (cflags) have one of
        them set; the AORs are split into ``part_max`` parts by their hash and part
        ``part_idx`` is returned, so a caller can spread its work over ``part_max`` runs."""
        when = self.now() if now is None else now
        part_max = max(part_max, 1)
        out: list[Contact] = []
        for dom in self.known_domains():
            for aor, contacts in dom.records():
                if self.aor_hash(aor) % part_max != part_idx % part_max:
                    continue
                out.extend(c for c in contacts
                           if c.alive(when) and (not flags or c.cflags & flags))
        return out

    def _finish(self, timeout: float | None = None) -> None:
        assert self._inflight is not None
        future, batches = self._inflight
        self._inflight = None
        try:
            future.result(timeout)
        except DbError:
            log.error("usrloc: database sync failed; tried again at the next timer run")
            return
        except TimeoutError:
            log.error("usrloc: database sync still running after %ss", timeout)
            return
        for b in batches:
            b.domain.done(b)

    def flush(self, expire: bool = False) -> None:
        """Write every pending change now (ul.flush, and write-back at shutdown)."""
        if self.db is None or self.db_mode == DB_ONLY:
            return
        if self._inflight is not None:
            self._finish(FLUSH_WAIT)
        batches = [b for b in (d.collect(self.now(), expire) for d in self.known_domains())
                   if not b.empty]
        if not batches:
            return
        try:
            sync.write(self.db, batches)
        except DbError:
            log.error("usrloc: flush to the database failed")
            return
        for b in batches:
            b.domain.done(b)

    def expired(self, domain: str, contact: Contact) -> None:
        for handler in self.expired_handlers:
            try:
                handler(domain, contact)
            except Exception:
                log.exception("usrloc: contact-expired handler failed")
