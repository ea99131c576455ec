"""Transaction identifiers and To tags without a random read per transaction.

Each process draws one cryptographically random prefix (again in a forked child, so workers
never share one) and counts from there: ``<prefix><n>`` is unique across the server's
processes and restarts (RFC 3261 8.1.1.7 asks branch ids to be unique across space and time),
and the To tags of our own replies carry the same per-process randomness (RFC 3261 19.3) with a
counter, as Kamailio's tm does with its per-process tag and a suffix. Reading os.urandom for
every transaction was a system call on the call path.
"""

from __future__ import annotations

import itertools
import os
import secrets


class _Source:
    __slots__ = ("ident_prefix", "tag_prefix", "counter")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        token = secrets.token_hex(12)
        self.ident_prefix = token[:12]
        self.tag_prefix = token[12:]
        self.counter = itertools.count(1)


_SOURCE = _Source()
os.register_at_fork(after_in_child=_SOURCE.reset)


def new_ident_and_tag() -> tuple[str, str]:
    """A fresh transaction ident (no ``.``: branch ids are ``z9hG4bK<ident>.<index>``) and the
    To tag of the replies the transaction generates."""
    n = next(_SOURCE.counter)
    return f"{_SOURCE.ident_prefix}{n:x}", f"{_SOURCE.tag_prefix}-{n:x}"
