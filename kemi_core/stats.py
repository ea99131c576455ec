"""Kamailio's core statistics on ``core.counter``, and the statistics RPCs.

The core counts what Kamailio's core counts, under Kamailio's names (group ``core``:
``rcv_requests``, ``rcv_requests_<method>``, ``rcv_replies_<class>xx[_<method>]``,
``fwd_requests`` ...), plus kemi's own figures in group ``kemi`` (replies and requests sent by
class, script errors, worker restarts). Modules add theirs with ``core.counter(group, name)``
(sl's ``sl:*``, tm's ``tmx:*``); the RPCs below list them all, in Kamailio's order (by group,
then name). Counting is an unlocked add in the worker's own slot of shared memory
(kemi_core.counters); the main process sums when it reads.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kemi_core.metrics import render
from kemi_core.processes import process_samples
from kemi_core.rpc.protocol import RpcFault

if TYPE_CHECKING:
    from kemi_core.counters import Counter, Statistic
    from kemi_core.runtime.core import Core

#: Methods Kamailio counts by name (``core:rcv_requests_<name>``); others are unsupported_methods.
REQUEST_METHODS = ("ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
                   "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE")
#: Methods whose replies Kamailio counts by class (``core:rcv_replies_2xx_<name>``).
REPLY_METHODS = {"BYE": "bye", "CANCEL": "cancel", "INVITE": "invite", "MESSAGE": "message",
                 "PRACK": "prack", "REFER": "refer", "REGISTER": "reg", "UPDATE": "update"}
#: Reply codes counted on their own (``core:rcv_replies_<code>``).
REPLY_CODES = (401, 404, 407, 480, 486)

class NullCounter:
    """What ``core.counter`` gives with KEMI_STATISTICS=off: counts nothing, reads 0, listed
    nowhere. The call itself remains, so "off" measures the counting, not the call sites; a
    hot caller's ``view[slot] += 1`` lands in a scratch cell nobody reads."""

    __slots__ = ("doc", "group", "kind", "name")
    view = memoryview(array("q", [0]))
    slot = 0

    def __init__(self, group: str, name: str, doc: str = "", kind: str = "counter") -> None:
        self.group, self.name, self.doc, self.kind = group, name, doc, kind

    def inc(self, n: int = 1) -> None:
        pass

    @property
    def value(self) -> int:
        return 0

    def reset(self) -> int:
        return 0

    def sum_of(self, parts: list[Any]) -> None:
        pass

    def by_rank(self) -> dict[int, int]:
        return {}


class CoreStats:
    """The core's counters, declared in the main process before the workers are forked."""

    def __init__(self, core: Core) -> None:
        c = core.counter
        self.rcv_requests = c("core", "rcv_requests", "requests received")
        self.request_by_method: dict[str, Counter] = {
            m: c("core", f"rcv_requests_{m.lower()}", f"{m} requests received")
            for m in REQUEST_METHODS}
        self.unsupported_methods = c("core", "unsupported_methods",
                                     "requests received with a method counted under no name")
        self.rcv_replies = c("core", "rcv_replies", "replies received")
        self.reply_class = [c("core", f"rcv_replies_{k}xx", f"{k}xx replies received")
                            for k in range(1, 7)]
        self.reply_18x = c("core", "rcv_replies_18x", "18x replies received")
        self.reply_code = {code: c("core", f"rcv_replies_{code}", f"{code} replies received")
                           for code in REPLY_CODES}
        self.reply_class_method: dict[tuple[int, str], Counter] = {
            (k, m): c("core", f"rcv_replies_{k}xx_{short}", f"{k}xx replies received to {m}")
            for k in range(1, 7) for m, short in REPLY_METHODS.items()}
        self.fwd_requests = c("core", "fwd_requests", "requests forwarded statelessly")
        self.fwd_replies = c("core", "fwd_replies", "replies forwarded statelessly")
        self.drop_requests = c("core", "drop_requests", "requests dropped by the onsend route")
        self.drop_replies = c("core", "drop_replies",
                              "replies dropped (reply route, or no Via of ours to forward by)")
        self.err_requests = c("core", "err_requests", "requests that could not be forwarded")
        self.err_replies = c("core", "err_replies", "replies that could not be forwarded")
        self.bad_URIs_rcvd = c("core", "bad_URIs_rcvd",
                               "requests whose Request-URI does not parse")
        self.bad_msg_hdr = c("core", "bad_msg_hdr",
                             "messages with a malformed header (answered 400 or dropped)")
        self.sent_requests = c("kemi", "sent_requests", "requests sent (forwarded or local)")
        self.sent_replies = c("kemi", "sent_replies", "replies sent (relayed or local)")
        self.sent_class = [c("kemi", f"sent_replies_{k}xx", f"{k}xx replies sent")
                           for k in range(1, 7)]
        self.script_errors = c("kemi", "script_errors", "routing script runs that failed")
        self.replies_handed_over = c("kemi", "replies_handed_over",
                                     "replies handed to the worker holding their transaction "
                                     "(several workers: the kernel did not steer them)")
        self.worker_restarts = c("kemi", "worker_restarts", "workers restarted after dying")
        # Totals are the sums of their families (one increment per message, not two or
        # three); their own increments count what no member takes (a status outside 100-699,
        # a reply to a method not counted by name).
        self.rcv_requests.sum_of([*self.request_by_method.values(), self.unsupported_methods])
        for k, by_class in enumerate(self.reply_class, 1):
            by_class.sum_of([self.reply_class_method[(k, m)] for m in REPLY_METHODS])
        self.rcv_replies.sum_of(self.reply_class)
        self.sent_replies.sum_of(self.sent_class)
        #: what a reply received increments, by (status, CSeq method); filled as met, bounded
        #: (the dispatcher reads it itself: ``get(key) or counters_of_reply(*key)``)
        self.reply_counters: dict[tuple[int, str | None], tuple[Counter, ...]] = {}
        #: what a message sent increments, by its first 9 bytes: a reply ("SIP/2.0 2") its
        #: class (+ sent_replies), a class outside 1-6 sent_replies alone; anything else is a
        #: request (``sent_counter.get(data[:9], sent_requests)``, in ``core.send``)
        self.sent_counter: dict[bytes, Counter] = {
            b"SIP/2.0 " + bytes([byte]): self.sent_replies for byte in range(256)}
        for k in range(1, 7):
            self.sent_counter[b"SIP/2.0 %d" % k] = self.sent_class[k - 1]

    # ---- on the message path (a dict lookup and one or two adds) ------------------------
    # The adds are ``Counter.inc`` written out (``view[slot] += 1``), a Python call less per
    # counter. The dispatcher and ``core.send`` count what they receive and send themselves,
    # as these do, without the call.
    def request(self, method: str) -> None:
        counter = self.request_by_method.get(method, self.unsupported_methods)  # + rcv_requests
        counter.view[counter.slot] += 1

    def reply(self, status: int, cseq_method: str | None) -> None:
        counters = self.reply_counters.get((status, cseq_method))
        if counters is None:
            counters = self.counters_of_reply(status, cseq_method)
        for counter in counters:
            counter.view[counter.slot] += 1

    def counters_of_reply(self, status: int, cseq_method: str | None) -> tuple[Counter, ...]:
        """The counters a reply increments: its class by method (+ class, + rcv_replies), or
        its class alone, 18x, its code when counted on its own."""
        cls = status // 100
        if not 1 <= cls <= 6:
            counters: tuple[Counter, ...] = (self.rcv_replies,)
        else:
            by_method = self.reply_class_method.get((cls, cseq_method))  # type: ignore[arg-type]
            counters = (by_method if by_method is not None else self.reply_class[cls - 1],)
            if 180 <= status <= 189:
                counters += (self.reply_18x,)
            by_code = self.reply_code.get(status)
            if by_code is not None:
                counters += (by_code,)
        if len(self.reply_counters) < 4096:
            self.reply_counters[(status, cseq_method)] = counters
        return counters

    def sent(self, data: bytes) -> None:
        """Count one outgoing message by its first bytes (``SIP/2.0 NNN`` is a reply; see
        ``sent_counter``). ``core.send`` does the same without this call."""
        counter = self.sent_counter.get(data[:9], self.sent_requests)
        counter.view[counter.slot] += 1


def count_restart(core: Core, rank: int) -> None:
    """The main process restarted worker ``rank`` (kemi:worker_restarts, and per rank)."""
    restarts: dict[int, int] = core.__dict__.setdefault("worker_restarts", {})
    restarts[rank] = restarts.get(rank, 0) + 1
    if core.stats is not None:
        core.stats.worker_restarts.inc()


# ---- selection, as Kamailio's statistics RPCs take it ------------------------------------
def ordered(stats: Iterable[Statistic]) -> list[Statistic]:
    """Kamailio's listing order: by group, then name (byte order)."""
    return sorted(stats, key=lambda s: (s.group, s.name))


def select(core: Core, keys: Iterable[str]) -> list[Statistic]:
    """``all``, ``group:``, ``group:name`` or a bare ``name`` (in any group); each statistic
    once, in Kamailio's order."""
    table = core.counters
    picked: dict[tuple[str, str], Statistic] = {}
    for key in keys:
        key = str(key)
        if key == "all":
            found = list(table)
        elif key.endswith(":"):
            found = table.select(group=key[:-1])
        elif ":" in key:
            group, _, name = key.partition(":")
            found = table.select(group=group, name=name)
        else:
            found = table.select(name=key)
        for stat in found:
            picked[(stat.group, stat.name)] = stat
    return ordered(picked.values())


def _line(stat: Statistic) -> str:
    return f"{stat.group}:{stat.name} = {stat.value}"


def rpc_get_statistics(core: Core, params: list[Any]) -> list[str]:
    if not params:
        raise RpcFault("Please provide which stats to retrieve", 400)
    return [_line(s) for s in select(core, params)]


def rpc_reset_statistics(core: Core, params: list[Any]) -> None:
    if not params:
        raise RpcFault("Please provide stats name", 400)
    for stat in select(core, params):
        stat.reset()


def rpc_clear_statistics(core: Core, params: list[Any]) -> list[str]:
    """Each named statistic as ``group:name = 0 (old value)``, then reset (gauges stay)."""
    if not params:
        raise RpcFault("Please provide stats name", 400)
    lines = []
    for stat in select(core, params):
        before = stat.reset()
        now = stat.value
        lines.append(f"{stat.group}:{stat.name} = {now} ({before})" if before != now
                     else _line(stat))
    return lines


def rpc_fetch(core: Core, params: list[Any]) -> dict[str, str]:
    return {f"{s.group}.{s.name}": str(s.value) for s in select(core, params or ["all"])}


def rpc_fetchn(core: Core, params: list[Any]) -> dict[str, int]:
    return {f"{s.group}.{s.name}": s.value for s in select(core, params or ["all"])}


def snapshot(core: Core) -> dict[str, Any]:
    """Everything ``kemi stats --json`` and ``kemi top`` show: every statistic and each
    process's CPU time and restarts, stamped with the time."""
    now = time.time()
    return {
        "time": round(now, 3),
        "uptime": round(now - core.started_at, 3),
        "statistics": {f"{s.group}:{s.name}": s.value for s in ordered(core.counters)},
        "processes": [{"rank": p.rank, "pid": p.pid, "role": p.role,
                       "cpu_seconds": p.cpu_seconds, "restarts": p.restarts}
                      for p in process_samples(core)],
    }


def prometheus_text(core: Core, selection: str = "all", prefix: str = "kamailio_") -> str:
    """/metrics: the statistics ``selection`` picks (xhttp_prom_stats: "all", "group:",
    "name"; "" for none) and each process's CPU time and restarts."""
    stats = select(core, [selection]) if selection else []
    return render(stats, prefix, process_samples(core))


def register_stats_commands(core: Core) -> None:
    core.add_rpc("stats.get_statistics", rpc_get_statistics,
                 'statistics as "group:name = value" lines; params: all | group: | name ...')
    core.add_rpc("stats.reset_statistics", rpc_reset_statistics,
                 "set the named statistics to 0 (all | group: | name ...)")
    core.add_rpc("stats.clear_statistics", rpc_clear_statistics,
                 'reset the named statistics, listing each as "group:name = 0 (old value)"')
    core.add_rpc("stats.fetch", rpc_fetch, '{"group.name": "value"}; params as get_statistics')
    core.add_rpc("stats.fetchn", rpc_fetchn, '{"group.name": value}; params as get_statistics')
    core.add_rpc("kemi.stats", lambda c, p: snapshot(c),
                 "every statistic and each process's CPU seconds and restarts, with the time")
