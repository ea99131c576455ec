"""usrloc's statistics, named as Kamailio 5.6 names them (``kamcmd stats.get_statistics usrloc:``).

``usrloc:registered_users`` (AORs in every table), and for each table ``<table>_users`` (AORs),
``<table>_contacts`` (contacts, expired ones the timer has not removed yet included) and
``<table>_expires`` (contacts the timer removed). They are the core's shared counters: a save in
any worker changes them, any process reads the sum. Users and contacts move only when a record
gains or loses entries (a refresh costs nothing); with db_mode 3 nothing is held in memory and
they stay 0, as in Kamailio.
"""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, ModuleError

GROUP = "usrloc"


class _Uncounted:
    """For a table whose name cannot be a statistic's (it holds ':' or blanks)."""

    def inc(self, n: int = 1) -> None:
        pass


def _counter(core: Core, name: str, doc: str, kind: str) -> Any:
    try:
        return core.counter(GROUP, name, doc, kind=kind)  # type: ignore[arg-type]
    except ModuleError:
        return _Uncounted()


def registered_users(core: Core) -> Any:
    return _counter(core, "registered_users", "AORs registered in every location table",
                    "gauge")


class DomainStats:
    """The counters of one location table."""

    __slots__ = ("contacts", "expires", "total", "users")

    def __init__(self, core: Core, table: str, total: Any) -> None:
        self.users = _counter(core, f"{table}_users", f"AORs in table {table}", "gauge")
        self.contacts = _counter(core, f"{table}_contacts", f"contacts in table {table}",
                                 "gauge")
        self.expires = _counter(core, f"{table}_expires",
                                f"contacts of table {table} removed on expiry", "counter")
        self.total = total

    def changed(self, before: int, after: int) -> None:
        """A record went from ``before`` to ``after`` contacts."""
        if before != after:
            self.contacts.inc(after - before)
            if not before or not after:
                step = 1 if after else -1
                self.users.inc(step)
                self.total.inc(step)

    def loaded(self, users: int, contacts: int) -> None:
        self.users.inc(users)
        self.total.inc(users)
        self.contacts.inc(contacts)
