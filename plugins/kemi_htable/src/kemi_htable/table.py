"""One hash table on the shared store: Kamailio's htable semantics.

Items are ints or strings. A table with ``autoexpire`` gives every item that many seconds of
life, renewed by each update (unless ``updateexpire=0``); only such tables keep a per-item
expiry (``$shtex``, ``sht_setex``), as in Kamailio. ``initval`` is what an absent item reads
as, and what ``sht_inc`` starts from (without it, incrementing an absent or string item
fails). Every worker sees a change at its next read: the items live in the shared store
(``htable:<name>``), each change is one atomic write.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from kemi_core.api import DELETE, KEEP, SharedStore, SharedTable
from kemi_htable.spec import TableSpec

log = logging.getLogger("kemi.htable")

Value = int | str
#: Kamailio's KEMI answer of sht_inc/sht_dec when there is nothing to increment.
INC_FAILED = -255
_ABSENT = object()


class HTable:
    def __init__(self, spec: TableSpec, store: SharedStore) -> None:
        self.spec = spec
        self.items: SharedTable = store.table(f"htable:{spec.name}")
        self._ttl: float | None = float(spec.autoexpire) if spec.autoexpire else None

    @property
    def name(self) -> str:
        return self.spec.name

    # ---- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> Value | None:
        """The item's value, ``initval`` when absent (None without one)."""
        try:
            value = self.items.get(key, _ABSENT)
        except ValueError:  # a key the store cannot hold is never there
            value = _ABSENT
        if value is _ABSENT:
            return self.spec.initval
        return value  # type: ignore[no-any-return]

    def has(self, key: str) -> bool:
        try:
            return key in self.items
        except ValueError:
            return False

    def expires_in(self, key: str) -> int:
        """Seconds left to the item ($shtex); 0 when absent or never expiring."""
        if not self._ttl:
            return 0
        try:
            at = self.items.expires_at(key)
        except ValueError:
            return 0
        return max(0, round(at - time.time())) if at else 0

    def snapshot(self) -> list[tuple[str, Value]]:
        return self.items.items()

    # ---- writes --------------------------------------------------------------------------
    def set(self, key: str, value: Value) -> bool:
        """Set an item; its expiry restarts (autoexpire), or is kept with updateexpire=0."""
        try:
            if self._ttl and not self.spec.updateexpire:
                if not self.items.add(key, value, ttl=self._ttl):
                    self.items.update(key, lambda _old: value, ttl=KEEP)
            else:
                self.items.put(key, value, ttl=self._ttl)
        except ValueError as exc:
            log.error("htable %s: cannot set %r: %s", self.name, key[:60], exc)
            return False
        return True

    def set_expire(self, key: str, seconds: int) -> bool:
        """Give an existing item ``seconds`` more life (only tables with autoexpire)."""
        if not self._ttl:
            return True
        try:
            self.items.update(key, lambda old: DELETE if old is _ABSENT else old, _ABSENT,
                              ttl=float(seconds) if seconds > 0 else None)
        except ValueError:
            return False
        return True

    def set_with_expire(self, key: str, value: Value, seconds: int) -> bool:
        """sht_setxi/sht_setxs: set, then expire in ``seconds`` (autoexpire tables only)."""
        if not self._ttl:
            return self.set(key, value)
        try:
            self.items.put(key, value, ttl=float(seconds) if seconds > 0 else self._ttl)
        except ValueError:
            return False
        return True

    def add(self, key: str, delta: int) -> int | None:
        """Atomic increment; None when the item is absent (and no initval) or a string."""
        initval = self.spec.initval
        result: list[int | None] = [None]

        def bump(old: Any) -> Any:
            if old is _ABSENT:
                if initval is None:
                    return DELETE
                old = initval
            if not isinstance(old, int):
                return old
            result[0] = old + delta
            return old + delta

        ttl = self._ttl if self._ttl and self.spec.updateexpire else KEEP
        try:
            self.items.update(key, bump, _ABSENT, ttl=ttl)
        except ValueError:
            return None
        return result[0]

    def delete(self, key: str) -> bool:
        try:
            return self.items.delete(key)
        except ValueError:
            return False

    def clear(self) -> None:
        self.items.clear()

    def delete_where(self, keep: Callable[[str, Value], bool]) -> int:
        """Remove the items for which ``keep`` is False; how many."""
        gone = 0
        for key, value in self.items.items():
            if not keep(key, value) and self.items.delete(key):
                gone += 1
        return gone

    def load(self, rows: Iterable[tuple[str, Value, float | None]], replace: bool) -> int:
        """Put (key, value, ttl) rows in, optionally after emptying the table (a reload)."""
        store = self.items.store
        count = 0
        with store.transaction() as tx:
            if replace:
                for key in self.items.keys(""):
                    tx.delete(self.items, key)
            for key, value, ttl in rows:
                try:
                    tx.put(self.items, key, value, ttl if ttl is not None else self._ttl)
                    count += 1
                except ValueError as exc:
                    log.error("htable %s: row %r not loaded: %s", self.name, key[:60], exc)
        return count


# ---- matching (sht_match_name, sht_rm_name, $shtcn ...) --------------------------------------
def matcher(op: str, value: str) -> Callable[[str], bool] | None:
    """A predicate for Kamailio's match operators; None for an unknown one (or a bad regex)."""
    op = op.lower()
    if op == "eq":
        return lambda s: s == value
    if op == "ne":
        return lambda s: s != value
    if op == "sw":
        return lambda s: s.startswith(value)
    if op == "ew":
        return lambda s: s.endswith(value)
    if op == "in":
        return lambda s: value in s
    if op == "re":
        try:
            rx = re.compile(value)
        except re.error as exc:
            log.error("htable: bad regular expression %r: %s", value, exc)
            return None
        return lambda s: rx.search(s) is not None
    return None


def count_matching(values: Iterable[str], pattern: str) -> int:
    """$shtcn/$shtcv: ``==x`` equal, ``~%x`` starts with, ``%~x`` ends with, ``~~re`` or a
    plain pattern a regular expression."""
    for prefix, op in (("==", "eq"), ("~%", "sw"), ("%~", "ew"), ("~~", "re")):
        if pattern.startswith(prefix):
            test = matcher(op, pattern[2:])
            break
    else:
        test = matcher("re", pattern)
    if test is None:
        return 0
    return sum(1 for v in values if test(v))
