"""The dispatcher of this server: its settings, where its list comes from, its shared state.

Made in the main process at mod_init (the list is loaded and published there), inherited by
every worker. ``reload()`` may run in any process (the ``dispatcher.reload`` RPC in the main
process, ``ds_reload()`` in a worker): the new list is published in the shared store and every
process uses it from its next selection on.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from kemi_core.api import Core, Database, DbError, open_db, shared_store
from kemi_dispatcher.call_load import CallLoad
from kemi_dispatcher.destinations import Dest, DsList, ListError, build, parse_list, rows_to_dests
from kemi_dispatcher.params import Settings
from kemi_dispatcher.state import SharedState

if TYPE_CHECKING:
    from kemi_dispatcher.pinger import Pinger

log = logging.getLogger("kemi.dispatcher")


class ReloadRefused(Exception):
    """A reload asked for sooner than reload_delta after the previous one."""


class DsService:
    def __init__(self, core: Core, settings: Settings) -> None:
        self.core = core
        self.settings = settings
        self.state = SharedState(shared_store(core))
        self.db: Database | None = None
        if settings.db_url:
            self.db = open_db(core, settings.db_url, user="dispatcher")
        self._last_reload = -math.inf
        self.call_load = CallLoad(self.state.store, settings.hash_initexpire,
                                  settings.hash_expire)
        self.pinger: Pinger | None = None

    @property
    def source(self) -> str:
        if self.db is not None:
            return f"table {self.settings.table_name}"
        return self.core.resolve_path(self.settings.list_file)

    def read_dests(self) -> list[Dest]:
        """Every destination from the database table or the list file (ListError, DbError)."""
        s = self.settings
        if self.db is not None:
            rows = self.db.query(s.table_name, order_by="id")
            return self._with_local_sockets(rows_to_dests(rows, s.columns, s.strict_load,
                                                          s.attrs_none))
        path = self.source
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ListError(f"cannot read the list file {path}: {exc.strerror}") from None
        return self._with_local_sockets(parse_list(text, path, s.strict_load, s.attrs_none))

    def _with_local_sockets(self, dests: list[Dest]) -> list[Dest]:
        """Drop (or, with ds_load_mode 1, refuse) destinations whose ``socket`` attribute names
        no socket this server listens on, as Kamailio does."""
        local = {(a.proto, a.host.strip("[]"), a.port) for a in self.core.config.listen}
        kept = []
        for d in dests:
            if d.socket:
                proto, _, rest = d.socket.partition(":")
                host, _, port = rest.rpartition(":")
                if (proto.lower(), host.strip("[]"), int(port) if port.isdigit() else 5060) \
                        not in local:
                    msg = f"socket {d.socket} of {d.uri} is not one this server listens on"
                    if self.settings.strict_load:
                        raise ListError(msg)
                    log.error("dispatcher: %s: destination skipped", msg)
                    continue
            kept.append(d)
        return kept

    def reload(self, force: bool = False) -> DsList:
        """Load the destinations again and publish them (ReloadRefused within reload_delta;
        ListError or DbError when they cannot be read: the old list stays)."""
        now = self.core.clock.now()
        if not force and now - self._last_reload < self.settings.reload_delta:
            raise ReloadRefused("ongoing reload")
        dslist = build(self.read_dests())
        self._last_reload = now
        gen = self.state.publish(dslist)
        log.info("dispatcher: %d destinations in %d sets loaded from %s (generation %d)",
                 len(dslist), len(dslist.sets), self.source, gen)
        return dslist

    def try_reload(self) -> int:
        """ds_reload() and dispatcher.reload: 1 done, -1 refused or failed (logged)."""
        try:
            self.reload()
        except ReloadRefused:
            log.error("dispatcher: reload refused: too soon after the previous one (reload_delta)")
            return -1
        except (ListError, DbError) as exc:
            log.error("dispatcher: reload failed, the current list stays: %s", exc)
            return -1
        return 1
