"""Transaction identifiers and To tags without a random read per transaction.

Each process draws one cryptographically random prefix (again in a forked child, so workers
never share one) and counts from there: ``<prefix><n>`` is unique across the server's
processes and restarts (RFC 3261 8.1.1.7 asks branch ids to be unique across space and time),
and the To tags of our own replies carry the same per-process randomness (RFC 3261 19.3) with a
counter, as Kamailio's tm does with its per-process tag and a suffix. Reading os.urandom for
every transaction was a system call on the call path.

An ident starts with the worker's rank mark (``kemi_core.api.rank_mark``, set by
``set_rank`` from child_init), so the branch of every request this worker sends names it and
a reply reaching another worker (they share the listen port) finds its way here.
"""

from __future__ import annotations

import itertools
import os
import secrets

from kemi_core.api import rank_mark

MAGIC_COOKIE = "z9hG4bK"


class _Source:
    __slots__ = ("ident_prefix", "tag_prefix", "counter", "mark", "token")

    def __init__(self) -> None:
        self.mark = ""
        self.reset()

    def reset(self) -> None:
        self.token = secrets.token_hex(12)
        self.ident_prefix = self.mark + self.token[:12]
        self.tag_prefix = self.token[12:]
        self.counter = itertools.count(1)


_SOURCE = _Source()
os.register_at_fork(after_in_child=_SOURCE.reset)


def set_rank(rank: int) -> None:
    """This process is worker ``rank``: its idents start with the rank's mark from now on."""
    _SOURCE.mark = rank_mark(rank)
    _SOURCE.ident_prefix = _SOURCE.mark + _SOURCE.token[:12]


def local_branch() -> str:
    """A new branch for a request tm itself sends (its own transaction, rank mark first)."""
    return f"{MAGIC_COOKIE}{_SOURCE.mark}{secrets.token_hex(8)}.l"


def new_ident_and_tag() -> tuple[str, str]:
    """A fresh transaction ident (no ``.``: branch ids are ``z9hG4bK<ident>.<index>``) and the
    To tag of the replies the transaction generates."""
    n = next(_SOURCE.counter)
    return f"{_SOURCE.ident_prefix}{n:x}", f"{_SOURCE.tag_prefix}-{n:x}"
