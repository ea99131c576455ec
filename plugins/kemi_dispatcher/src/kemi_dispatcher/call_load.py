"""Call-load dispatching (algorithm 10): active calls per destination ``duid``, by Call-ID.

As in Kamailio, a selection with algorithm 10 counts the INVITE's call on the destination it
picked; ``ds_load_update()`` confirms it on a 2xx and removes it on BYE/CANCEL,
``ds_load_unset()`` removes it. A call never confirmed stops counting after
``ds_hash_initexpire`` seconds, a confirmed one after ``ds_hash_expire`` (the shared store's
expiry; its sweep in the main process gives the load back). Counts are shared by every worker.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import MsgContext, SharedStore
from kemi_dispatcher.destinations import Dest, DestSet
from kemi_dispatcher.state import usable

log = logging.getLogger("kemi.dispatcher")

CALLS, COUNTS = "dispatcher:calls", "dispatcher:load"


class CallLoad:
    def __init__(self, store: SharedStore, initexpire: int, expire: int) -> None:
        self.calls = store.table(CALLS)
        self.counts = store.table(COUNTS)
        self.initexpire = max(initexpire, 1)
        self.expire = max(expire, 1)

    def watch_expiry(self, store: SharedStore) -> None:
        """Main process: an expired call gives its load back."""
        store.on_expire(CALLS, lambda _key, value: self._release(value))

    def load(self, setid: int, duid: str) -> int:
        return int(self.counts.get(f"{setid}/{duid}") or 0)

    def least_loaded(self, dset: DestSet, flags: tuple[int, ...], count: int) -> int | None:
        best, best_load = None, 0
        for i in range(count):
            d = dset.dests[i]
            if not usable(flags[i]) or not d.duid:
                continue
            load = self.load(dset.setid, d.duid)
            if d.maxload and load >= d.maxload:
                continue
            if best is None or load < best_load:
                best, best_load = i, load
        return best

    def add(self, callid: str, dest: Dest) -> None:
        if not dest.duid:
            return
        self.remove(callid)
        self.calls.put(callid, (dest.setid, dest.duid, False), ttl=self.initexpire)
        self.counts.incr(f"{dest.setid}/{dest.duid}")

    def replace(self, callid: str, dest: Dest) -> None:
        self.add(callid, dest)

    def remove(self, callid: str) -> bool:
        value = self.calls.pop(callid, None)
        if value is None:
            return False
        self._release(value)
        return True

    def _release(self, value: Any) -> None:
        setid, duid, _confirmed = value
        self.counts.update(f"{setid}/{duid}", lambda n: max(int(n or 0) - 1, 0), default=0)

    def update(self, ctx: MsgContext) -> int:
        """ds_load_update: BYE/CANCEL remove the call's load; a 2xx to INVITE confirms it."""
        msg = ctx.msg
        callid = msg.call_id
        if msg.is_request:
            if msg.method in ("BYE", "CANCEL"):
                return 1 if self.remove(callid) else -1
            return 1
        if msg.cseq.method == "INVITE" and 200 <= msg.status < 300:
            value = self.calls.get(callid)
            if value is None:
                return -1
            self.calls.put(callid, (value[0], value[1], True), ttl=self.expire)
        return 1

    def unset(self, ctx: MsgContext) -> int:
        """ds_load_unset: remove the call's load."""
        return 1 if self.remove(ctx.msg.call_id) else -1
