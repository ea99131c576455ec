"""The destination list and each destination's state, shared by every worker (the shared store).

What Kamailio keeps in shared memory lives in the server's shared store (docs/shared-store.md):

- ``list``: ``(generation, DsList)``, written at start and by each reload (any process);
- ``s<setid>``: the set's :class:`SetState` (the generation it belongs to, each destination's
  state flags and its probe counters), changed atomically by selections that mark a destination,
  by the prober (main process) and by the RPCs;
- ``rr<setid>`` / ``w<setid>``: the round-robin and weight cursors (one per set, as Kamailio's);
- ``ping``: whether keepalives are sent (``dispatcher.ping_active``).

A worker keeps the list it last read and reads it again only when a set's state names a newer
generation, so a selection costs one read of the set's state (a few microseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kemi_core.api import SharedStore
from kemi_dispatcher.destinations import DISABLED, INACTIVE, PROBING, STATE_MASK, TRYING, DsList

TABLE = "dispatcher:state"


@attrs.frozen
class SetState:
    gen: int
    flags: tuple[int, ...]
    fails: tuple[int, ...]
    oks: tuple[int, ...]

    def with_dest(self, i: int, flags: int | None = None, fails: int | None = None,
                  oks: int | None = None) -> SetState:
        def put(seq: tuple[int, ...], value: int | None) -> tuple[int, ...]:
            return seq if value is None else seq[:i] + (value,) + seq[i + 1:]

        return SetState(self.gen, put(self.flags, flags), put(self.fails, fails),
                        put(self.oks, oks))


def letters(flags: int) -> str:
    """Kamailio's two-letter state: A/I/T/D then P (probing) or X."""
    if flags & DISABLED:
        first = "D"
    elif flags & INACTIVE:
        first = "I"
    elif flags & TRYING:
        first = "T"
    else:
        first = "A"
    return first + ("P" if flags & PROBING else "X")


def parse_state(text: str) -> int | None:
    """State flags from ds_mark_dst / dispatcher.set_state letters (a, i, t, d, each + p)."""
    t = text.strip().lower()
    if not t:
        return None
    base = {"a": 0, "i": INACTIVE, "t": TRYING, "d": DISABLED}.get(t[0])
    if base is None or any(c not in "p" for c in t[1:]):
        return None
    return base | (PROBING if "p" in t[1:] else 0)


def usable(flags: int) -> bool:
    """Whether a selection may pick a destination (trying ones may be picked)."""
    return not flags & (INACTIVE | DISABLED)


class SharedState:
    """The dispatcher's view of the shared store (made in mod_init, used in every process)."""

    def __init__(self, store: SharedStore) -> None:
        self.store = store
        self.table = store.table(TABLE)
        self._gen = -1
        self._list: DsList | None = None

    # ---- the list ------------------------------------------------------------------------
    def publish(self, dslist: DsList) -> int:
        """Make ``dslist`` the list every process uses; states start from the loaded flags."""
        with self.store.transaction() as tx:
            gen = int(tx.get(self.table, "gen") or 0) + 1
            tx.put(self.table, "list", (gen, dslist))
            for dset in dslist:
                n = len(dset.dests)
                tx.put(self.table, f"s{dset.setid}", SetState(
                    gen, tuple(d.flags & STATE_MASK for d in dset.dests), (0,) * n, (0,) * n))
            tx.put(self.table, "gen", gen)
        self._gen, self._list = gen, dslist
        return gen

    def current(self, gen: int | None = None) -> DsList:
        """The list of generation ``gen`` (the newest when None), cached per process."""
        if gen is None:
            gen = int(self.table.get("gen") or 0)
        if gen != self._gen or self._list is None:
            found = self.table.get("list")
            if found is None:
                return DsList((), {})
            self._gen, self._list = found
        return self._list

    # ---- states --------------------------------------------------------------------------
    def set_state(self, setid: int) -> SetState | None:
        value = self.table.get(f"s{setid}")
        return value if isinstance(value, SetState) else None

    def update_set(self, setid: int, fn: Callable[[SetState], SetState]) -> SetState | None:
        """Change a set's state atomically (``fn`` runs under the store's writer lock)."""
        out: list[SetState] = []

        def change(old: Any) -> Any:
            if not isinstance(old, SetState):
                return old
            new = fn(old)
            out.append(new)
            return new

        self.table.update(f"s{setid}", change)
        return out[0] if out else None

    def cursor(self, name: str, setid: int, fn: Callable[[int], tuple[int, int]]) -> int:
        """Advance a per-set cursor atomically: ``fn(current) -> (stored, returned)``."""
        result: list[int] = []

        def change(old: Any) -> int:
            stored, returned = fn(int(old or 0))
            result.append(returned)
            return stored

        self.table.update(f"{name}{setid}", change, default=0)
        return result[0]

    @property
    def ping_active(self) -> bool:
        return bool(self.table.get("ping", 1))

    @ping_active.setter
    def ping_active(self, value: bool) -> None:
        self.table.put("ping", 1 if value else 0)
