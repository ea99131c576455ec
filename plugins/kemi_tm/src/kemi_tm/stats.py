"""tm statistics on the core's shared counters (``core.counter``), read by the tm.stats RPC
and the statistics RPCs as ``tm:<name>`` (Kamailio's tm statistic names).

The counters are declared in mod_init, before the workers are forked; each worker adds in its
own slot and a read sums them. A worker that dies and is restarted keeps adding to its slot;
transactions it held when it died stay counted as in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.api import Core

#: tm.stats field -> (Kamailio statistic name, what it counts).
FIELDS: dict[str, tuple[str, str]] = {
    "created": ("created", "transactions created"),
    "freed": ("freed", "transactions freed"),
    "replied_locally": ("local_replies", "final replies tm sent itself"),
    "relayed_replies": ("relayed_replies", "replies relayed upstream"),
    "2xx": ("2xx_transactions", "transactions completed with a 2xx"),
    "3xx": ("3xx_transactions", "transactions completed with a 3xx"),
    "4xx": ("4xx_transactions", "transactions completed with a 4xx"),
    "5xx": ("5xx_transactions", "transactions completed with a 5xx"),
    "6xx": ("6xx_transactions", "transactions completed with a 6xx"),
    "rpl_received": ("rpl_received", "replies received for transactions"),
    "uac_sent": ("UAC_transactions", "requests tm sent as a UAC"),
}


class TmStats:
    """tm's counters by their tm.stats field names."""

    def __init__(self, core: Core) -> None:
        self.counters = {field: core.counter("tm", name, doc)
                         for field, (name, doc) in FIELDS.items()}
        created, freed = self.counters["created"], self.counters["freed"]
        core.gauge("tm", "inuse_transactions", lambda: created.value - freed.value,
                   "transactions in use (created - freed)")

    def incr(self, name: str, by: int = 1) -> None:
        self.counters[name].inc(by)

    def final(self, status: int) -> None:
        cls = status // 100
        if 2 <= cls <= 6:
            self.counters[f"{cls}xx"].inc()

    def by_rank(self) -> dict[int, dict[str, int]]:
        """rank -> {field: count} for the processes that counted anything."""
        rows: dict[int, dict[str, int]] = {}
        for field, counter in self.counters.items():
            for rank, value in counter.by_rank().items():
                rows.setdefault(rank, dict.fromkeys(FIELDS, 0))[field] = value
        return rows

    def totals(self) -> dict[str, int]:
        out = {field: counter.value for field, counter in self.counters.items()}
        out["current"] = out["created"] - out["freed"]
        return out
