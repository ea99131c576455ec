"""One shared store per server, made in the main process, swept by the main process's loop."""

from __future__ import annotations

import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from kemi_core.errors import ModuleError
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
    worker is refused, since the other workers could never see what it made.
    """
    store = _stores.get(core)
    if store is not None:
        return store
    if _Forked.child:
        raise ModuleError("the shared store must be made in the main process (call "
                          "shared_store(core) in mod_init), not first in a worker")
    store = SharedStore.create()
    _stores[core] = store
    core.main_loop_hooks.append(lambda loop: Sweeper(store, loop).start())
    loop = core.loop
    if loop is not None and loop.is_running():  # made after the main loop started
        Sweeper(store, loop).start()
    log.debug("shared store at %s", store.path)
    return store


class Sweeper:
    """Removes expired entries once for the whole server, from the main process's loop."""

    def __init__(self, store: SharedStore, loop: Any, interval: float = SWEEP_INTERVAL) -> None:
        self.store = store
        self.loop = loop
        self.interval = interval
        self.runs = 0

    def start(self) -> None:
        self.loop.call_later(self.interval, self._run)

    def _run(self) -> None:
        if self.store.closed:
            return
        removed = 0
        try:
            removed = self.store.sweep()
            self.runs += 1
            if self.runs % READER_CHECK_EVERY == 0:
                self.store.reader_check()
        except Exception:
            log.exception("shared store sweep failed")
        # A full batch: more are due, so come back at once (each batch holds the lock briefly).
        self.loop.call_later(0.01 if removed >= SWEEP_BATCH else self.interval, self._run)
