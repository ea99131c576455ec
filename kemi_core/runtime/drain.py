"""In a worker: the message entry points (busy mark, drain gate) and draining before exit.

A worker drains when the server stops (SIGTERM) or when the main process recycles it: it
takes no new requests (they get a 503 or, a worker recycled while others run, go to another
worker; ACK and CANCEL still reach the transactions they belong to, replies still arrive) and exits as soon as no transaction is in progress, or when
``exit_timeout`` runs out. Modules say how much work they have in progress through a
``work_in_progress() -> int`` method on the service they register in ``core.services``
(tm counts its transactions without a final reply).

A retransmission of a request whose transaction is still there (an INVITE resent before its
final reply, a BYE resent while its branch waits) is no new request: a 503 would end the
caller's transaction while the server still works on it. While draining, the gate offers each
request first to the services with an ``absorb_retransmission(msg) -> bool`` method (tm's
answers it with the last reply, or takes it in, and says True); only a request no service
takes gets the 503. Without such a service (no tm) every request is new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.sip import SipMsg, SipParseError, build_reply, reply_top_via

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core
    from kemi_core.runtime.dispatch import Dispatcher
    from kemi_core.transport.receiver import RecvInfo

log = logging.getLogger("kemi.worker")

#: Requests a draining worker still routes: they belong to transactions already in progress.
PASS_WHEN_DRAINING = ("ACK", "CANCEL")


def retransmission_absorbers(core: Core) -> list[Callable[[SipMsg], bool]]:
    """The services' ``absorb_retransmission(msg) -> bool`` methods (see the module's doc)."""
    found = (getattr(svc, "absorb_retransmission", None) for svc in list(core.services.values()))
    return [fn for fn in found if callable(fn)]


def work_in_progress(core: Core) -> int:
    """What the modules still have to finish (transactions waiting for a final reply, ...)."""
    total = 0
    for svc in list(core.services.values()):
        count = getattr(svc, "work_in_progress", None)
        if count is None:
            continue
        try:
            total += int(count())
        except Exception:
            log.exception("work_in_progress of %r failed", svc)
    return total


class EntryGate:
    """Wraps the dispatcher's entry points: marks the worker busy on the board for the length
    of each message, and while draining answers new requests with 503 instead of routing."""

    def __init__(self, core: Core, busy: Any, index: int) -> None:
        self.core = core
        self._busy = busy  # the board's float64 view, this worker's busy-since at [index]
        self._index = index
        self._draining: list[bool] = [False]
        #: asked only while draining (the fast path never looks at them); set by start_draining
        self._absorbers: list[Callable[[SipMsg], bool]] = []
        self._hand_over: Callable[[SipMsg, RecvInfo], bool] | None = None

    @property
    def draining(self) -> bool:
        return self._draining[0]

    def start_draining(self, hand_over: Callable[[SipMsg, RecvInfo], bool] | None = None
                       ) -> None:
        """From now on new requests are refused, or given to ``hand_over`` (another worker:
        a recycle), which says False when nobody took one."""
        self._absorbers = retransmission_absorbers(self.core)
        self._hand_over = hand_over
        self._draining[0] = True

    def receiver(self, dispatcher: Dispatcher) -> Dispatcher:
        """``dispatcher`` as the transports' receiver, behind this gate: it marks the worker
        busy for the length of each message and, while the worker drains, answers new
        requests with 503 instead of routing them (``Dispatcher.entry_gate``; the dispatcher
        does this itself, a Python call less per message than a wrapper)."""
        dispatcher.entry_gate(self._busy, self._index, self._draining, self._refuse_msg)
        return dispatcher

    def mark(self, inner: Callable[[], None]) -> Callable[[], None]:
        """``inner()`` (the timer tick, which runs tm's failure routes) with the busy mark."""
        busy, i, mono = self._busy, self._index, time.monotonic

        def marked() -> None:
            busy[i] = mono()
            try:
                inner()
            finally:
                busy[i] = 0.0
        return marked

    # ---- while draining -----------------------------------------------------------------------
    def _refuse_msg(self, msg: SipMsg, rcv: RecvInfo) -> bool:
        if not msg.is_request:
            return False
        if msg.method in PASS_WHEN_DRAINING:
            return msg.method == "ACK" and self._acks_local_reply(msg)
        if self._absorbed(msg):
            return True  # a retransmission: its transaction answered it, the script never sees it
        if self._hand_over is not None and self._hand_over(msg, rcv):
            return True
        try:
            # the tag of every stateless reply made here: the ACK of this 503 ends at sl's
            # filter (or below while draining), as the ACK of any local negative reply
            tag = self.core.local_tag(msg)
            data = build_reply(msg, 503, "Service Unavailable", to_tag=tag,
                               headers=[("Retry-After", "5")],
                               top_via=reply_top_via(msg, rcv.src_ip, rcv.src_port, False))
            ctx = self.core.new_context(msg, rcv)
            self.core.send_reply(ctx, data)
        except (SipParseError, ValueError, OSError):
            pass  # nothing addressable: dropping is the answer
        return True


    def _acks_local_reply(self, msg: SipMsg) -> bool:
        """An ACK of a stateless reply made here (this gate's 503): it ends here, as
        Kamailio's sl module ends the ACK of its own replies (also without sl loaded)."""
        try:
            return self.core.is_local_tag(msg.to.tag)
        except SipParseError:
            return False

    def _absorbed(self, msg: SipMsg) -> bool:
        busy, i = self._busy, self._index
        for absorb in self._absorbers:
            busy[i] = time.monotonic()
            try:
                if absorb(msg):
                    return True
            except SipParseError:
                pass  # no key to match: a new request to the service, so refused below
            except Exception:
                log.exception("absorb_retransmission %r failed", absorb)
            finally:
                busy[i] = 0.0
        return False
