"""What the sans-IO transaction machines ask their caller to do (h11 style: returned lists).

Every input method (``start``, ``on_response``, ``on_request``, ``on_timer``, ...) returns a
``list[Action]``; the caller performs them in order.

``Send(dest, data)``
    Put ``data`` on the wire to ``dest`` (a request, a retransmission, an ACK, a CANCEL, a reply).
``PassUp(msg)``
    A message the transaction user must see: from a client transaction, a response to act on
    (first 1xx/2xx/final; retransmissions of non-2xx finals are absorbed, 2xx ones are passed up
    again because the ACK for 2xx is end to end); from an INVITE server transaction, an ACK that
    answers a 2xx (end to end: route it, it does not belong to this transaction).
``LocalFinal(status)``
    A client transaction will get no (usable) final reply: the local outcome ``status`` stands
    for its reply: 408 on timeout (Timer B/F, fr_inv_timer), 487 when a cancelled INVITE got no
    final 64*T1 after the CANCEL, 503 on a transport error (RFC 3261 16.9).
``Terminated()``
    The machine reached Terminated and can be forgotten.
``BranchFinal(branch, status, reply)``  (proxy only)
    Branch ``branch`` got its final outcome: the reply, or ``None`` when generated locally
    (timeout, send failure). For branch-failure routes, accounting, logs.
``NeedsDecision(status, reply)``  (proxy only)
    Every branch completed without a 2xx and nothing was sent upstream yet: run the failure
    route now, then call ``relay_best()``, ``reply()`` or ``add_branch()`` (serial forking).
    ``status``/``reply`` is the best reply so far (``reply`` None when it is a local one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

UNRELIABLE = frozenset({"udp"})


@attrs.frozen
class Dest:
    """Where to send: transport ("udp", "tcp", "tls", ...), host, port and optionally the local
    (ip, port) socket to send from (as ``Core.send(..., local=)``)."""

    proto: str
    host: str
    port: int
    local: tuple[str, int] | None = None

    @property
    def reliable(self) -> bool:
        """No SIP-level retransmissions over reliable transports (RFC 3261 17.1.1.2, 17.1.2.2)."""
        return self.proto.lower() not in UNRELIABLE


@attrs.define(slots=True)
class Send:
    dest: Dest
    data: bytes


@attrs.define(slots=True)
class PassUp:
    msg: SipMsg


@attrs.define(slots=True)
class LocalFinal:
    status: int = 408


@attrs.define(slots=True)
class Terminated:
    pass


@attrs.define(slots=True)
class BranchFinal:
    branch: int
    status: int
    reply: SipMsg | None


@attrs.define(slots=True)
class NeedsDecision:
    status: int
    reply: SipMsg | None


Action = Send | PassUp | LocalFinal | Terminated | BranchFinal | NeedsDecision


class TransactionStateError(Exception):
    """An input the transaction's state forbids (e.g. a second final reply, a branch after a 2xx)."""
