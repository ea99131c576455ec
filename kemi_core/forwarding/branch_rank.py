"""The worker's rank in the branch of the requests it sends (several workers, one UDP port).

Every worker sends from the listen socket, as Kamailio does, so a reply may arrive at any of
them (the kernel spreads a UDP port's datagrams over its SO_REUSEPORT sockets by a hash of
the sender's address). The branch our Via carries is ours to shape (RFC 3261 8.1.1.7: the
magic cookie, then anything unique among our transactions): tm's branches start with the
sending worker's *rank mark*, two capital letters right after the cookie,
``z9hG4bK<mark><ident...>``, so that whoever reads a reply finds its worker cheaply: the
kernel's steering program (``transport.steer``) and, for what the kernel did not steer, the
worker that got it (``WorkerEndpoints.steer_reply``, through the mailbox).

The mark is the rank's index in base 26, ``AA`` for rank 1, ``AB`` for rank 2 ... (676 ranks).
What the main process sends (dispatcher keepalives) carries ``MAIN_MARK``, a capital then a
digit: no rank's, and the kernel's program does not steer it (the reply reaches any worker,
which hands it to the main process: ``runtime.main_sip``). Nothing else we write puts a capital
right after the cookie (stateless branches, tm's local ones before: lowercase hex), so a branch
without a mark is no worker's.
"""

from __future__ import annotations

MAGIC_COOKIE = "z9hG4bK"
_AT = len(MAGIC_COOKIE)
_A = ord("A")
#: how many ranks a mark can name
MAX_RANKS = 26 * 26
#: the mark of what the main process sends, and the start of such a branch
MAIN_MARK = "M0"
MAIN_BRANCH = MAGIC_COOKIE + MAIN_MARK


def rank_mark(rank: int) -> str:
    """The mark of worker ``rank`` (1..MAX_RANKS); '' for the main process (rank 0) and ranks
    beyond (their replies are not steered: any worker handles them as today)."""
    if not 0 < rank <= MAX_RANKS:
        return ""
    high, low = divmod(rank - 1, 26)
    return chr(_A + high) + chr(_A + low)


def branch_rank(branch: str | None) -> int | None:
    """The rank a branch's mark names, None when it carries none."""
    if not branch or len(branch) < _AT + 2 or not branch.startswith(MAGIC_COOKIE):
        return None
    high = ord(branch[_AT]) - _A
    low = ord(branch[_AT + 1]) - _A
    if 0 <= high < 26 and 0 <= low < 26:
        return high * 26 + low + 1
    return None
