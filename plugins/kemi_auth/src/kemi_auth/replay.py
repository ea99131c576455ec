"""Replay protection shared by every worker: nonce counts and one-time nonces.

Kamailio keeps a bit or a byte per in-flight nonce in shared memory; here each nonce that was
answered has one entry in the shared store (``auth:nonces``), keyed by the nonce's random id,
expiring with the nonce. Nothing is written when a nonce is made: a nonce nobody answered
costs nothing, and an entry can never outlive its nonce (an older one is stale anyway).

- ``nonce_count``: a response with ``nc`` is good only when its nc is greater than every nc
  seen for that nonce (RFC 7616 3.4: the client counts up).
- ``one_time_nonce``: a response without ``nc`` (or with nonce_count off) is good only the
  first time its nonce is answered.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.api import SharedTable

TABLE = "auth:nonces"
_ONCE = -1  # the value of a nonce answered once (one_time_nonce)


class ReplayGuard:
    def __init__(self, table: SharedTable) -> None:
        self.table = table

    def first_use(self, nid: bytes, expires: int) -> bool:
        """one_time_nonce: True the first time ``nid`` is answered, False after."""
        return bool(self.table.add(nid.hex(), _ONCE, ttl=_ttl(expires)))

    def count_up(self, nid: bytes, nc: int, expires: int) -> bool:
        """nonce_count: True when ``nc`` is above every nc seen for ``nid`` (and records it)."""
        accepted = False

        def bump(last: Any) -> Any:
            nonlocal accepted
            if last is None or (last != _ONCE and nc > last):
                accepted = True
                return nc
            return last

        self.table.update(nid.hex(), bump, default=None, ttl=_ttl(expires))
        return accepted


def _ttl(expires: int) -> float:
    """Keep the entry as long as its nonce could still be accepted (with a little slack)."""
    return max(1.0, expires - time.time() + 5.0)
