"""tm statistics on the core's shared counters (``core.counter``), under Kamailio's names.

Kamailio lists tm's statistics in group ``tmx`` (``tmx:UAS_transactions``,
``tmx:2xx_transactions``, ``tmx:rpl_sent`` ...) and the ``tm.stats`` RPC as one struct
(current, waiting, total ...); both are read from the same counters here. Declared in mod_init,
before the workers are forked; each worker adds in its own slot and a read sums them. A worker
that dies and is restarted keeps adding to its slot; the main process then counts the
transactions the dead one held as freed, in its own slot (``forget_current``), so they no
longer show as in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.api import Core

#: Short field -> (group, Kamailio statistic name, what it counts).
FIELDS: dict[str, tuple[str, str, str]] = {
    "uas": ("tmx", "UAS_transactions", "transactions created for received requests"),
    "uac": ("tmx", "UAC_transactions", "transactions created for requests tm sent itself"),
    # as in Kamailio 5.6, each 2xx an INVITE relays counts (the callee's retransmissions too):
    # once per transaction here, and the ones after the first in 2xx_again (summed in)
    "2xx": ("tmx", "2xx_transactions", "2xx finals sent (each 2xx an INVITE relays)"),
    "3xx": ("tmx", "3xx_transactions", "transactions completed with a 3xx"),
    "4xx": ("tmx", "4xx_transactions", "transactions completed with a 4xx"),
    "5xx": ("tmx", "5xx_transactions", "transactions completed with a 5xx"),
    "6xx": ("tmx", "6xx_transactions", "transactions completed with a 6xx"),
    "rpl_received": ("tmx", "rpl_received", "replies received for transactions"),
    "rpl_generated": ("tmx", "rpl_generated", "replies tm generated (t_reply, 100 Trying, 408)"),
    "rpl_relayed": ("tmx", "rpl_relayed", "replies relayed upstream"),
    "rpl_absorbed": ("tmx", "rpl_absorbed", "retransmitted replies absorbed"),
    "freed": ("tm", "freed", "transactions freed (their wait time over)"),
    "2xx_again": ("tm", "2xx_again", "2xx an INVITE relayed after its first (in 2xx too)"),
}
CLASSES = ("2xx", "3xx", "4xx", "5xx", "6xx")


class TmStats:
    """tm's counters by short field name, and the gauges computed from them."""

    def __init__(self, core: Core) -> None:
        self.counters = {field: core.counter(group, name, doc)
                         for field, (group, name, doc) in FIELDS.items()}
        c = self.counters
        # the counters the call path adds to, as attributes: ``stats.uas.inc()`` costs no
        # lookup by name (several per message)
        self.uas = c["uas"]
        self.rpl_received = c["rpl_received"]
        self.rpl_generated = c["rpl_generated"]
        self.rpl_relayed = c["rpl_relayed"]
        self.freed = c["freed"]
        #: status class (2..6) -> its counter
        self.by_class = {cls: c[f"{cls}xx"] for cls in range(2, 7)}
        #: a 2xx an accepted INVITE relays again: counted in 2xx (as Kamailio), but the gauges
        #: below take one final per transaction
        self.again_2xx = c["2xx_again"]
        c["2xx"].sum_of([self.again_2xx])
        core.gauge("tmx", "rpl_sent", lambda: c["rpl_generated"].value + c["rpl_relayed"].value,
                   "replies sent upstream (generated + relayed)")
        core.gauge("tmx", "inuse_transactions", self.inuse, "transactions in memory")
        core.gauge("tmx", "active_transactions", self.active,
                   "transactions still without a final reply")
        #: rank -> transactions of dead workers of that rank already counted as freed
        self._forgotten: dict[int, int] = {}

    def incr(self, name: str, by: int = 1) -> None:
        self.counters[name].inc(by)

    def final(self, status: int) -> None:
        counter = self.by_class.get(status // 100)
        if counter is not None:
            counter.inc()

    # ---- computed (the main process reads; counts from every worker) -----------------------
    def inuse(self) -> int:
        return max(0, self.counters["uas"].value - self.counters["freed"].value)

    def active(self) -> int:
        done = sum(self.counters[k].value for k in CLASSES) - self.again_2xx.value
        return max(0, min(self.inuse(), self.counters["uas"].value - done))

    def forget_current(self, rank: int) -> int:
        """In the main process: the worker of ``rank`` is gone with its transactions; count
        them as freed (in the main process's own slot: no other process writes there).
        Returns how many."""
        row = self.by_rank().get(rank, {})
        held = row.get("uas", 0) + row.get("uac", 0) - row.get("freed", 0)
        lost = held - self._forgotten.get(rank, 0)
        if lost <= 0:
            return 0
        self._forgotten[rank] = self._forgotten.get(rank, 0) + lost
        self.counters["freed"].inc(lost)
        return lost

    def by_rank(self) -> dict[int, dict[str, int]]:
        """rank -> {field: count} for the processes that counted anything."""
        rows: dict[int, dict[str, int]] = {}
        for field, counter in self.counters.items():
            for rank, value in counter.by_rank().items():
                rows.setdefault(rank, dict.fromkeys(FIELDS, 0))[field] = value
        return rows

    def totals(self) -> dict[str, int]:
        """tm.stats as Kamailio prints it, field for field and in its order."""
        v = {field: counter.value for field, counter in self.counters.items()}
        inuse = self.inuse()
        total = v["uas"] + v["uac"]
        out = {"current": inuse, "waiting": inuse - self.active(), "total": total,
               "total_local": v["uac"], "rpl_received": v["rpl_received"],
               "rpl_generated": v["rpl_generated"],
               "rpl_sent": v["rpl_generated"] + v["rpl_relayed"]}
        out.update({k: v[k] for k in reversed(CLASSES)})
        out.update({"created": total, "freed": v["freed"], "delayed_free": 0})
        return out
