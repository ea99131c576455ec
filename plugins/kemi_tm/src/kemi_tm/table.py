"""All live transactions of a worker: lookup by matching key, timers through one heap.

``TransactionTable`` holds ``ProxyTransaction`` entries (a transaction with no branch is a
plain stateful UAS, e.g. t_newtran + t_reply or a CANCEL's own transaction).

* ``insert(tx)`` / ``remove(tx)`` / ``len(table)``.
* ``lookup_request(msg)``: the transaction a retransmitted request or a non-2xx ACK belongs to.
* ``lookup_cancel_target(cancel)``: the INVITE transaction a CANCEL refers to.
* ``lookup_reply(reply)``: ``(tx, branch index)`` from the Via branch we generated.
* ``next_timer()`` / ``on_timer(now) -> [tx, ...]`` (the entries run): each entry's next deadline, filed
  in a bucket per tick of 1/TICKS_PER_S s (and kept on the entry, ``tx.filed_at``), with a
  min-heap of the ticks that have a bucket.
  Entries report every input through ``tx.on_reschedule`` (set on insert). An entry that ends
  leaves the table at once; any other is only marked (``tx.refile``) and refiled at the next
  flush, which ``next_timer`` and ``on_timer`` do first: a call's transaction takes 2-3 inputs
  within a few ms (INVITE, 180, 200) and is refiled once for them all, not once per input.
  The owner must flush within a tick: ``on_refile()`` tells it the first entry waits (it calls
  ``on_timer`` at the next tick). A deadline is never earlier than the input that set it, so
  no timer fires later than it would have (its bucket's tick is that flush's or a later one).
  Moving an entry is two dict operations (a heap push per change left superseded items to
  skip and compact, and at 1,500 calls/s the heap held ~100,000 of them). Due entries are
  handled in deadline order.
* ``on_deadline(at)``, when set, hears the deadline that opens each new bucket (the owner keeps
  one clock timer armed at the earliest; a deadline in an existing bucket is no earlier than
  one already reported for that tick's bucket, rounded to the tick).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_tm.keys import MAGIC_COOKIE, ServerKey, cancel_target_key, server_key
from kemi_tm.proxy import ProxyTransaction, not_filed
from kemi_tm.server import ServerState

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

_MAX_TIMER_ROUNDS = 100_000  # bound of one on_timer call (entries handled)
#: buckets per second of the timer index (a power of two: tick * (1/TICKS_PER_S) is exact)
TICKS_PER_S = 64
_COOKIE_LEN = len(MAGIC_COOKIE)
_SERVER_TERMINATED = ServerState.TERMINATED


class TransactionTable:
    def __init__(self) -> None:
        self._by_key: dict[ServerKey, ProxyTransaction] = {}
        self._by_ident: dict[str, ProxyTransaction] = {}
        self._buckets: dict[int, dict[str, ProxyTransaction]] = {}  # tick -> entries due in it
        self._ticks: list[int] = []  # min-heap of the ticks in _buckets
        # one bound method shared by every entry (not one allocated per insert)
        self._hook = self._reschedule
        #: entries marked since the last flush (each once: ``tx.refile``)
        self._marked: list[ProxyTransaction] = []
        self.on_deadline: Callable[[float], None] | None = None
        #: hears that the first entry waits to be refiled (the owner flushes within a tick)
        self.on_refile: Callable[[], None] | None = None
        #: hears about every transaction that leaves the table
        self.on_freed: Callable[[ProxyTransaction], None] | None = None

    def __len__(self) -> int:
        return len(self._by_ident)

    def __contains__(self, tx: object) -> bool:
        return isinstance(tx, ProxyTransaction) and self._by_ident.get(tx.ident) is tx

    def insert(self, tx: ProxyTransaction) -> None:
        """Add a new transaction; KeyError when one with the same key or ident exists."""
        # (the key, a tuple, is hashed once: its hash is not cached)
        key, by_key, by_ident = tx.key, self._by_key, self._by_ident
        if by_key.setdefault(key, tx) is not tx:
            raise KeyError(f"transaction already exists: {key!r}")
        if tx.ident in by_ident:
            del by_key[key]
            raise KeyError(f"transaction already exists: {key!r}")
        by_ident[tx.ident] = tx
        tx.on_reschedule = self._hook
        if tx.branches or tx.timers or tx.state is _SERVER_TERMINATED:
            self._reschedule(tx)  # else nothing to file yet (a new transaction, 100 sent)

    def remove(self, tx: ProxyTransaction) -> bool:
        """Take ``tx`` out (its timer too); False when it was not in the table."""
        ident = tx.ident
        if self._by_ident.get(ident) is not tx:
            return False
        if tx.filed_at is not None:  # not when on_timer took it out to run it
            self._unfile(tx)
        self._forget(tx)
        return True

    def _forget(self, tx: ProxyTransaction) -> None:
        """``remove`` of an entry known to be in the table and not filed."""
        del self._by_ident[tx.ident]
        del self._by_key[tx.key]  # there: ``insert`` keeps keys and idents one to one
        tx.on_reschedule = not_filed
        if self.on_freed is not None:
            self.on_freed(tx)

    def lookup_request(self, msg: SipMsg) -> ProxyTransaction | None:
        return self._by_key.get(server_key(msg))

    def get(self, key: ServerKey) -> ProxyTransaction | None:
        """The transaction of a server key (``keys.server_key``) already computed."""
        return self._by_key.get(key)

    def lookup_cancel_target(self, cancel: SipMsg) -> ProxyTransaction | None:
        tx = self._by_key.get(cancel_target_key(cancel))
        return tx if tx is not None and tx.is_invite else None

    def lookup_reply(self, reply: SipMsg) -> tuple[ProxyTransaction, int] | None:
        branch = reply.via.branch
        if branch is None:
            return None
        head, _, tail = branch.rpartition(".")  # z9hG4bK<ident> . <branch index>
        tx = self._by_ident.get(head[_COOKIE_LEN:])
        if tx is None or not tail.isdigit():
            return None
        # the branch by its index, then its key (Via branch, CSeq method) checked: inline, as
        # every reply comes this way. The key holds the whole branch: the magic cookie too.
        index = int(tail)
        branches = tx.branches
        if index >= len(branches):
            return None
        b = branches[index]
        method = reply.cseq.method
        if method == "CANCEL" and tx.method != "CANCEL":  # the CANCEL we sent for an INVITE branch
            return (tx, index) if b.cancel is not None and b.key[0] == branch else None
        return (tx, index) if b.key == (branch, method) else None

    def next_timer(self) -> float | None:
        """The earliest deadline of any entry (None when no entry has a timer)."""
        if self._marked:
            self._flush()
        ticks, buckets = self._ticks, self._buckets
        while ticks:
            bucket = buckets.get(ticks[0])
            if bucket:
                return min(tx.filed_at for tx in bucket.values())  # type: ignore[type-var]
            buckets.pop(heapq.heappop(ticks), None)
        return None

    def on_timer(self, now: float) -> list[ProxyTransaction]:
        """Fire every due timer, earliest first; each entry is run at most once per call.
        Returns the entries run (their sink heard what they did)."""
        if self._marked:
            self._flush()
        due: list[tuple[float, int, ProxyTransaction]] = []
        ticks, buckets = self._ticks, self._buckets
        last = math.ceil(now * TICKS_PER_S)  # the bucket holding ``now`` may be due in part
        n = 0
        while ticks and ticks[0] <= last and len(due) < _MAX_TIMER_ROUNDS:
            tick = ticks[0]
            bucket = buckets.get(tick)
            if bucket and tick == last:  # a partly due bucket: only what is due leaves it
                for ident, tx in list(bucket.items()):
                    at = tx.filed_at
                    if at <= now:  # type: ignore[operator]
                        del bucket[ident]
                        tx.filed_at = None
                        due.append((at, n, tx))  # type: ignore[arg-type]
                        n += 1
                if bucket:
                    break
            elif bucket:
                for tx in bucket.values():
                    due.append((tx.filed_at, n, tx))  # type: ignore[arg-type]
                    tx.filed_at = None
                    n += 1
            heapq.heappop(ticks)
            buckets.pop(tick, None)
        due.sort()
        ran = [tx for _, _, tx in due]
        # the entries run mark themselves for a refile (or are removed) through the hook; they
        # are filed below, before the owner asks for the next deadline: no wake-up for them
        on_refile, self.on_refile = self.on_refile, None
        try:
            for tx in ran:
                # the usual wake-up ends the entry (``ends_now``): it leaves at once, without
                # the hook and the end test it would run through
                if tx.ends_now(now):
                    self._forget(tx)
                else:
                    tx.on_timer(now)
        finally:
            self.on_refile = on_refile
        if self._marked:
            self._flush()
        return ran

    def _unfile(self, tx: ProxyTransaction) -> None:
        """Take ``tx`` out of its bucket (its deadline forgotten)."""
        at = tx.filed_at
        if at is not None:
            tx.filed_at = None
            bucket = self._buckets.get(math.ceil(at * TICKS_PER_S))
            if bucket is not None:
                bucket.pop(tx.ident, None)

    def _reschedule(self, tx: ProxyTransaction) -> None:
        # the hook, after every input of every transaction: an entry that ended leaves now
        # (a retransmission must not find it); the others are refiled at the next flush
        if tx.state is _SERVER_TERMINATED and tx.terminated:  # cheap test first
            self.remove(tx)
            return
        if not tx.refile:
            tx.refile = True
            marked = self._marked
            marked.append(tx)
            if len(marked) == 1 and self.on_refile is not None:
                self.on_refile()

    def _flush(self) -> None:
        """File every marked entry under its deadline now."""
        marked, self._marked = self._marked, []
        by_ident = self._by_ident
        for tx in marked:
            tx.refile = False
            if by_ident.get(tx.ident) is tx:  # not removed meanwhile
                self._file(tx)

    def _file(self, tx: ProxyTransaction) -> None:
        """File ``tx`` in the bucket of its next deadline (moved from where it was filed)."""
        at = tx.next_timer()
        old = tx.filed_at  # the entry's deadline as filed here (kept on it: no dict to upkeep)
        if old == at:
            return
        tx.filed_at = at
        ident = tx.ident
        buckets = self._buckets
        if old is not None:
            bucket = buckets.get(math.ceil(old * TICKS_PER_S))
            if bucket is not None:
                bucket.pop(ident, None)
        if at is None:
            return
        tick = math.ceil(at * TICKS_PER_S)
        bucket = buckets.get(tick)
        if bucket is None:
            buckets[tick] = bucket = {}
            heapq.heappush(self._ticks, tick)
            if self.on_deadline is not None:
                self.on_deadline(at)
        bucket[ident] = tx
