"""Replay protection shared by every worker: nonce counts and one-time nonces.

Kamailio keeps a byte (nonce_count) or a bit (one_time_nonce) per in-flight nonce in shared
memory; here each nonce that was answered has entries in the shared store (``auth:nonces``),
keyed by the nonce's random id, expiring with the nonce. Nothing is written when a nonce is
made: a nonce nobody answered costs nothing, and an entry never outlives its nonce.

As in Kamailio 5.6 (compared side by side), the rules apply before the password is checked:

- a nonce issued with qop under ``nonce_count``, answered with ``nc``: the nc must be above
  every nc seen for that nonce and at most 255, else the response is stale (-4);
- a nonce issued under ``one_time_nonce``, answered without nc (or issued without qop): the
  first answer uses it up, right password or not; any later one is refused (-6).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.api import SharedTable

TABLE = "auth:nonces"
#: Kamailio keeps one byte per nonce: a higher nc is stale.
MAX_NC = 255


class ReplayGuard:
    def __init__(self, table: SharedTable) -> None:
        self.table = table

    def first_use(self, nid: bytes, expires: int) -> bool:
        """one_time_nonce: True the first time ``nid`` is answered, False after."""
        return bool(self.table.add("o" + nid.hex(), 1, ttl=_ttl(expires)))

    def count_up(self, nid: bytes, nc: int, expires: int) -> bool:
        """nonce_count: True when ``nc`` is above every nc seen for ``nid`` (and records it)."""
        if not 0 < nc <= MAX_NC:
            return False
        accepted = False

        def bump(last: Any) -> Any:
            nonlocal accepted
            if nc > last:
                accepted = True
                return nc
            return last

        self.table.update("c" + nid.hex(), bump, default=0, ttl=_ttl(expires))
        return accepted


def _ttl(expires: int) -> float:
    """Keep the entry as long as its nonce could still be accepted (with a little slack)."""
    return max(1.0, expires - time.time() + 5.0)
