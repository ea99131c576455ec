"""The cyclic garbage collector in a worker, kept off the message path.

A stateful proxy keeps each transaction alive for ``wt_timer`` after its final reply: at 1,500
calls/s some 300,000 objects made by messages are alive at any time, about 40 per call.
CPython's collector walks every object still alive at each young collection: once in one of
generation 0, once more in one of generation 1, and then in every full collection (~0.25 s at
40,000 transactions). The message path makes no reference cycles (its objects are freed by
reference counting), so those walks find nothing; they were ~3.5% of a call's instructions
while transactions pile up (the first ``wt_timer`` seconds of load, bench/callpath.py).

So a worker (``tune_gc``):

* freezes what was loaded at start (modules, config, the engine): no collection walks it;
* freezes what survives each young collection (``SurvivorFreezer``, a collector callback): an
  object is walked once, by the first young collection it meets, and a cycle made among young
  objects (an error's traceback) is still found at once;
* once ``FULL_EVERY`` young collections have run, unfreezes everything and runs a full
  collection from its event loop (``collect_if_due``; a collector callback may not collect),
  which finds the cycles that formed among older objects, as CPython's own full collections
  would at its pace (``GC_THRESHOLDS``). The callback says when one is due (``on_due``: the
  worker rings its own doorbell, doorbell.py), so an idle worker, which allocates nothing,
  never wakes to ask.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

#: The worker's collector thresholds: young generations as CPython's defaults, full collections
#: about 100 times rarer than its default.
GC_THRESHOLDS = (700, 10, 1000)
#: Young collections between two full ones: what CPython's thresholds above would make
#: (a full collection after 1,000 of generation 1, each after 10 of generation 0).
FULL_EVERY = GC_THRESHOLDS[1] * GC_THRESHOLDS[2]


class SurvivorFreezer:
    """A collector callback: what a collection leaves alive is frozen (see the module
    docstring); ``collect_if_due()`` runs the full collection once ``full_every`` young
    collections have run; ``on_due()``, when set, is called once as it becomes due (from the
    callback: it may only ask for the collection, e.g. by a signal to this process)."""

    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self.full_every = full_every
        #: young collections since the last full one
        self.young = 0
        self.on_due: Callable[[], object] | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            gc.freeze()  # (a move of the generations' lists: no object is visited)
            if info["generation"] < 2:
                self.young += 1
                if self.young == self.full_every and self.on_due is not None:
                    self.on_due()

    def collect_if_due(self) -> int | None:
        """The full collection, when due: how many unreachable objects it found (None when it
        was not due). Run it from the event loop, between messages."""
        if self.young < self.full_every:
            return None
        self.young = 0
        gc.unfreeze()
        return gc.collect()  # (the callback freezes what is left when it ends)


def tune_gc() -> SurvivorFreezer:
    """Keep the collector off the message path in this process (see the module docstring);
    the callback installed (an earlier one of this process is replaced)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    for old in [cb for cb in gc.callbacks if isinstance(cb, SurvivorFreezer)]:
        gc.callbacks.remove(old)
    freezer = SurvivorFreezer()
    gc.callbacks.append(freezer)
    return freezer
