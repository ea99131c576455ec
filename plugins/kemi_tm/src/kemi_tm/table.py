"""All live transactions of a worker: lookup by matching key, timers through one heap.

``TransactionTable`` holds ``ProxyTransaction`` entries (a transaction with no branch is a
plain stateful UAS, e.g. t_newtran + t_reply or a CANCEL's own transaction).

* ``insert(tx)`` / ``remove(tx)`` / ``len(table)``.
* ``lookup_request(msg)``: the transaction a retransmitted request or a non-2xx ACK belongs to.
* ``lookup_cancel_target(cancel)``: the INVITE transaction a CANCEL refers to.
* ``lookup_reply(reply)``: ``(tx, branch index)`` from the Via branch we generated.
* ``next_timer()`` / ``on_timer(now) -> [(tx, actions), ...]``: a min-heap of each entry's next
  deadline. Entries report every change through ``tx.on_reschedule`` (set on insert), so the
  heap is always current; superseded heap items are skipped lazily and compacted when they
  pile up. An entry leaves the table as soon as it is terminated (after its wait timers).
* ``on_deadline(at)``, when set, hears every deadline pushed onto the heap (the owner keeps one
  clock timer armed at the earliest).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_tm.actions import Action
from kemi_tm.keys import MAGIC_COOKIE, ServerKey, cancel_target_key, server_key
from kemi_tm.proxy import ProxyTransaction

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

_MAX_TIMER_ROUNDS = 100_000  # bound of one on_timer call (entries handled)


class TransactionTable:
    def __init__(self) -> None:
        self._by_key: dict[ServerKey, ProxyTransaction] = {}
        self._by_ident: dict[str, ProxyTransaction] = {}
        self._deadline: dict[str, float] = {}  # ident -> deadline currently valid in the heap
        self._heap: list[tuple[float, int, ProxyTransaction]] = []
        self._seq = itertools.count()
        # one bound method shared by every entry (not one allocated per insert)
        self._hook = self._reschedule
        self.on_deadline: Callable[[float], None] | None = None

    def __len__(self) -> int:
        return len(self._by_ident)

    def __contains__(self, tx: object) -> bool:
        return isinstance(tx, ProxyTransaction) and self._by_ident.get(tx.ident) is tx

    def insert(self, tx: ProxyTransaction) -> None:
        """Add a new transaction; KeyError when one with the same key or ident exists."""
        if tx.key in self._by_key or tx.ident in self._by_ident:
            raise KeyError(f"transaction already exists: {tx.key!r}")
        self._by_key[tx.key] = tx
        self._by_ident[tx.ident] = tx
        tx.on_reschedule = self._hook
        self._reschedule(tx)

    def remove(self, tx: ProxyTransaction) -> None:
        if self._by_ident.get(tx.ident) is not tx:
            return
        del self._by_ident[tx.ident]
        if self._by_key.get(tx.key) is tx:
            del self._by_key[tx.key]
        self._deadline.pop(tx.ident, None)
        tx.on_reschedule = None

    def lookup_request(self, msg: SipMsg) -> ProxyTransaction | None:
        return self._by_key.get(server_key(msg))

    def get(self, key: ServerKey) -> ProxyTransaction | None:
        """The transaction of a server key (``keys.server_key``) already computed."""
        return self._by_key.get(key)

    def lookup_cancel_target(self, cancel: SipMsg) -> ProxyTransaction | None:
        tx = self._by_key.get(cancel_target_key(cancel))
        return tx if tx is not None and tx.is_invite else None

    def lookup_reply(self, reply: SipMsg) -> tuple[ProxyTransaction, int] | None:
        branch = reply.via.branch or ""
        if not branch.startswith(MAGIC_COOKIE):
            return None
        ident = branch[len(MAGIC_COOKIE):].rpartition(".")[0]
        tx = self._by_ident.get(ident)
        if tx is None:
            return None
        index = tx.match_reply(reply)
        return (tx, index) if index is not None else None

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> list[tuple[ProxyTransaction, list[Action]]]:
        """Fire every due timer; each entry is run at most once per call."""
        due: list[ProxyTransaction] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < _MAX_TIMER_ROUNDS:
            item = heapq.heappop(heap)
            if self._current(item):
                del self._deadline[item[2].ident]
                due.append(item[2])
        results: list[tuple[ProxyTransaction, list[Action]]] = []
        for tx in due:
            actions = tx.on_timer(now)  # reschedules (or removes) itself through the hook
            if actions:
                results.append((tx, actions))
        return results

    def _current(self, item: tuple[float, int, ProxyTransaction]) -> bool:
        tx = item[2]
        return self._deadline.get(tx.ident) == item[0] and self._by_ident.get(tx.ident) is tx

    def _reschedule(self, tx: ProxyTransaction) -> None:
        if tx.terminated:
            self.remove(tx)
            return
        at = tx.next_timer()
        deadline = self._deadline
        if at is None:
            deadline.pop(tx.ident, None)
            return
        ident = tx.ident
        if deadline.get(ident) == at:
            return
        deadline[ident] = at
        heapq.heappush(self._heap, (at, next(self._seq), tx))
        if len(self._heap) > 2 * len(self._deadline) + 64:
            self._compact()
        if self.on_deadline is not None:
            self.on_deadline(at)

    def _compact(self) -> None:
        self._heap = [item for item in self._heap if self._current(item)]
        heapq.heapify(self._heap)
