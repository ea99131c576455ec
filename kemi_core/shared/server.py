"""One shared store per server, made in the main process, swept once for the server (the
core's housekeeping: the main process's loop, or a test router's clock)."""

from __future__ import annotations

import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from kemi_core.errors import ModuleError
from kemi_core.runtime.clock import repeat
from kemi_core.shared.store import SWEEP_BATCH, SharedStore

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.shared")

#: Seconds between two sweeps of expired entries (reads never see them anyway).
SWEEP_INTERVAL = 1.0
#: Sweeps between two clean-ups of reader slots left by dead workers.
READER_CHECK_EVERY = 60

_stores: weakref.WeakKeyDictionary[Any, SharedStore] = weakref.WeakKeyDictionary()


class _Forked:
    """Set in every process made by os.fork() from this one (a worker cannot make the store)."""

    child = False


def _after_fork_in_child() -> None:
    _Forked.child = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_store(core: Core) -> SharedStore:
    """The server's shared store, made on first call.

    The first call must come from the main process before the workers are forked: a module's
    ``mod_init`` (or ``mod_register``). Workers get the same store; a first call from a forked
    worker is refused, since the other workers could never see what it made. Expiry follows
    ``core.clock.wall()``, and the sweep is the core's housekeeping (the main process's loop; a
    test router's clock).
    """
    store = _stores.get(core)
    if store is not None:
        return store
    if _Forked.child:
        raise ModuleError("the shared store must be made in the main process (call "
                          "shared_store(core) in mod_init), not first in a worker")
    store = SharedStore.create()
    store.wall = core.clock.wall
    _stores[core] = store
    core.add_housekeeping(Sweeper(store).run_once, SWEEP_INTERVAL)
    log.debug("shared store at %s", store.path)
    return store


def drop_shared_store(core: Core) -> None:
    """Remove the store made for ``core``, if any (a test router that is done)."""
    store = _stores.pop(core, None)
    if store is not None:
        store.remove()


class Sweeper:
    """Removes expired entries once for the whole server (the core's housekeeping)."""

    def __init__(self, store: SharedStore, loop: Any = None, interval: float = SWEEP_INTERVAL) -> None:
        self.store = store
        self.loop = loop
        self.interval = interval
        self.runs = 0

    def start(self) -> None:
        """Sweep from ``loop`` every ``interval`` seconds (what the housekeeping does)."""
        repeat(self.loop.call_later, self.run_once, self.interval)

    def run_once(self) -> float | None:
        """One sweep; the delay before the next one (at once while a full batch came out)."""
        if self.store.closed:
            return None
        removed = self.store.sweep()
        self.runs += 1
        if self.runs % READER_CHECK_EVERY == 0:
            self.store.reader_check()
        # A full batch: more are due, so come back at once (each batch holds the lock briefly).
        return 0.01 if removed >= SWEEP_BATCH else None
