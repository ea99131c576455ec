"""Client transactions (RFC 3261 17.1), sans-IO.

``InviteClientTransaction``: Calling -> Proceeding -> Completed / Accepted -> Terminated.
``NonInviteClientTransaction``: Trying -> Proceeding -> Completed -> Terminated.
Build either with ``new_client_transaction(request, dest, settings)``, then call ``start(now)``.

Inputs: ``start(now)``, ``on_response(reply, now)``, ``on_timer(now)``, ``on_transport_error(now)``
and, for INVITE, ``mark_cancelled(now)``. What goes on the wire goes to the machine's ``sink``
(see ``actions``); ``on_response`` returns whether the transaction user must see the reply,
``on_timer`` and ``on_transport_error`` the status of a local final (0: none). A proxy branch is
armed with ``arm(now)`` instead of ``start``: its caller sends the request (``data``) itself.
``next_timer()`` is the absolute time ``on_timer`` wants to be called next (None: no timer).

Where this differs from the letter of RFC 3261, on purpose:
* 2xx to an INVITE moves to Accepted (RFC 6026) for ``wt_timer`` so 2xx retransmissions from
  the other side are still matched and passed up (the proxy forwards each of them).
* Timer B is Kamailio's ``fr_timer``; after a 1xx the INVITE waits ``fr_inv_timer`` for a final.
  When Timer B runs out (no reply at all), the local 408 leaves the transaction Completed for
  ``wt_timer`` over UDP, as Kamailio's wait timer: a final that comes late is still ACKed.
  When that runs out in Proceeding the transaction reports a local 408 but stays alive:
  the proxy CANCELs the branch and the 487 that follows is still ACKed (9.1: given up 64*T1
  after the CANCEL at the latest).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from kemi_core.sip import parse_datagram
from kemi_tm.actions import Dest, Recorder, Sink
from kemi_tm.keys import ClientKey, client_key
from kemi_tm.messages import build_ack
from kemi_tm.timers import DEFAULT_TIMERS, EndsAfterTimer, Timers, TimerSettings, earliest

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg


class ClientState(enum.Enum):
    CALLING = "calling"  # INVITE only
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"  # INVITE after a 2xx (RFC 6026)
    TERMINATED = "terminated"


_WAITING = (ClientState.CALLING, ClientState.TRYING, ClientState.PROCEEDING)


class ClientTransaction(EndsAfterTimer):
    """What both client transactions share: the request, where it goes, timers, outcome."""

    TERMINATED_STATE = ClientState.TERMINATED

    # the INVITE machine's own fields (ack, cancelled, _life_end) are here too: one __init__
    # sets every field (a branch is made per relayed request; a layer of __init__ less)
    __slots__ = ("_request", "dest", "settings", "key", "state", "timers", "data",
                 "final_status", "local_final", "sink", "_interval", "_start",
                 "ack", "cancelled", "_life_end")

    def __init__(self, request: SipMsg | bytes, dest: Dest,
                 settings: TimerSettings = DEFAULT_TIMERS, branch: str | None = None,
                 sink: Sink | None = None, method: str = "") -> None:
        # ``request`` as bytes: what goes on the wire, ready (a proxy's branch, made without a
        # copy of the message); then ``branch`` and ``method`` say what it is, and ``request``
        # parses the bytes only when asked (to build a CANCEL or an ACK)
        if isinstance(request, bytes):
            self._request: SipMsg | None = None
            self.data = request
        else:
            self._request = request
            self.data = b""
            method = request.method
        #: where retransmissions, ACKs (and ``start``'s request) go; none given: a Recorder
        self.sink: Sink = sink if sink is not None else Recorder()
        self.dest = dest
        self.settings = settings
        # ``branch``: the top Via branch when the caller just put it there (no Via to parse);
        # a proxy's branch gives it (the usual case: keys.client_key without its call)
        self.key: ClientKey = (
            (branch, method) if branch is not None and method != "ACK"
            else client_key(branch if branch is not None else self.request.via.branch or "",
                            method))
        self.state = ClientState.TERMINATED  # until start()
        self.timers: Timers = {}
        #: status of the final reply received (0: none yet)
        self.final_status = 0
        #: status of the LocalFinal reported (0: none)
        self.local_final = 0
        self._interval = settings.retr_timer1
        self._start = 0.0
        #: INVITE: the hop-by-hop ACK sent for the negative final (resent on its retransmissions)
        self.ack: bytes | None = None
        self.cancelled = False
        self._life_end = 0.0

    @property
    def request(self) -> SipMsg:
        """The request this machine sends (parsed from its bytes on first use when it was
        given as bytes)."""
        req = self._request
        if req is None:
            req = self._request = parse_datagram(self.data)
        return req

    @property
    def terminated(self) -> bool:
        return self.state is ClientState.TERMINATED

    @property
    def got_provisional(self) -> bool:
        """A 1xx came and no final yet (the only time a CANCEL may be sent, 9.1)."""
        return self.state is ClientState.PROCEEDING

    def start(self, now: float) -> bool:
        """Arm the machine and send the request; whether the sink took it."""
        self.arm(now)
        return self.sink.send(self.dest, self.data)

    def arm(self, now: float) -> None:
        """``start`` without the send (the caller sends ``data`` to ``dest``)."""
        raise NotImplementedError

    def on_response(self, reply: SipMsg, now: float) -> bool:
        raise NotImplementedError

    def next_timer(self) -> float | None:
        return earliest(self.timers)

    def _send_request(self) -> None:
        self.sink.send(self.dest, self.data)

    def on_transport_error(self, now: float, status: int = 503) -> int:
        """The transport could not send the request: behave as if a 503 came back (16.9), or
        ``status``; returns that local final (0: the machine was past waiting for one)."""
        if self.state not in _WAITING or self.local_final:
            return 0
        self.local_final = status
        self._finish()
        return status


class InviteClientTransaction(ClientTransaction):
    __slots__ = ()

    def arm(self, now: float) -> None:
        s = self.settings
        self.state = ClientState.CALLING
        if self._request is not None:  # else made from its bytes
            self.data = self._request.to_bytes()
        self._start = now
        self._life_end = now + s.max_inv_lifetime
        if not self.dest.reliable:
            self._interval = s.retr_timer1
            self.timers["A"] = now + self._interval
        self.timers["B"] = min(now + s.fr_timer, self._life_end)

    def mark_cancelled(self, now: float) -> None:
        """A CANCEL went out for this branch: give up 64*T1 later if no final comes (9.1)."""
        self.cancelled = True
        if self.state is ClientState.PROCEEDING:
            limit = now + self.settings.cancel_wait
            current = self.timers.get("giveup")
            self.timers["giveup"] = limit if current is None else min(current, limit)

    def on_response(self, reply: SipMsg, now: float) -> bool:
        status = reply.status
        state = self.state
        if status < 200:
            if state not in (ClientState.CALLING, ClientState.PROCEEDING):
                return False
            first = state is ClientState.CALLING
            self.state = ClientState.PROCEEDING
            timers = self.timers
            timers.pop("A", None)
            timers.pop("B", None)
            if not self.local_final and (first or self.settings.restart_fr_on_each_reply):
                self.timers["fr"] = min(now + self.settings.fr_inv_timer, self._life_end)
            if first and self.cancelled:
                self.mark_cancelled(now)
            return True
        if status < 300:
            if state in (ClientState.CALLING, ClientState.PROCEEDING):
                self.state = ClientState.ACCEPTED
                self.final_status = status
                self.timers.clear()
                self.timers["M"] = now + self.settings.wt_timer
                return True
            # 2xx retransmissions and 2xx of other forks downstream: end to end, pass them up;
            # a 2xx after the branch's negative final too (a broken callee): a proxy forwards
            # every 2xx to INVITE (RFC 3261 16.7 step 5), and Kamailio 5.6 relays it
            return state is ClientState.ACCEPTED or state is ClientState.COMPLETED
        if state in (ClientState.CALLING, ClientState.PROCEEDING):
            self.state = ClientState.COMPLETED
            self.final_status = status
            self.timers.clear()
            self.ack = ack = build_ack(self.request, reply)
            self.sink.send(self.dest, ack)
            self._linger("D", 0.0 if self.dest.reliable else self.settings.wt_timer, now)
            return True
        if state is ClientState.COMPLETED:
            if self.ack is None:  # a final after Timer B's local 408: ACKed, not passed up
                self.ack = build_ack(self.request, reply)
            self.sink.send(self.dest, self.ack)  # retransmitted final: ACK again, absorb it
        return False

    def _fire(self, name: str, now: float) -> int:
        if name in ("D", "M"):  # tested first: the timer that fires in most transactions
            self._finish()
            return 0
        if name == "A" and self.state is ClientState.CALLING:
            self._interval *= 2
            self.timers["A"] = now + self._interval
            self._send_request()
            return 0
        if name == "B" and self.state is ClientState.CALLING:
            self.local_final = 408
            # nothing came back, so nothing to CANCEL (9.1); as Kamailio's wait timer, stay
            # wt_timer to ACK a final that comes late (its UAS retransmits it until ACKed)
            self.state = ClientState.COMPLETED
            self.timers.clear()
            self._linger("D", 0.0 if self.dest.reliable else self.settings.wt_timer, now)
            return 408
        if name == "fr" and self.state is ClientState.PROCEEDING:
            self.local_final = 408
            # stay to ACK the 487 the CANCEL will bring; bounded by the give-up timer
            if self.timers.get("giveup") is None:
                self.timers["giveup"] = now + self.settings.cancel_wait
            return 408
        if name == "giveup" and self.state is ClientState.PROCEEDING:
            local = 0
            if not self.local_final:
                self.local_final = local = 487 if self.cancelled else 408
            self._finish()
            return local
        return 0


class NonInviteClientTransaction(ClientTransaction):
    __slots__ = ()

    def arm(self, now: float) -> None:
        s = self.settings
        self.state = ClientState.TRYING
        if self._request is not None:  # else made from its bytes
            self.data = self._request.to_bytes()
        self._start = now
        if not self.dest.reliable:
            self._interval = s.retr_timer1
            self.timers["E"] = now + self._interval
        self.timers["F"] = now + min(s.fr_timer, s.max_noninv_lifetime)

    def on_response(self, reply: SipMsg, now: float) -> bool:
        if self.state not in (ClientState.TRYING, ClientState.PROCEEDING):
            return False  # Completed absorbs retransmitted finals
        if reply.status < 200:
            self.state = ClientState.PROCEEDING
            return True
        self.state = ClientState.COMPLETED
        self.final_status = reply.status
        self.timers.clear()
        self._linger("K", 0.0 if self.dest.reliable else self.settings.t4, now)
        return True

    def _fire(self, name: str, now: float) -> int:
        if name == "K":  # tested first: the timer that fires in most transactions
            self._finish()
            return 0
        if name == "E" and self.state in (ClientState.TRYING, ClientState.PROCEEDING):
            if self.state is ClientState.TRYING:
                self._interval = min(2 * self._interval, self.settings.retr_timer2)
            else:
                self._interval = self.settings.retr_timer2
            self.timers["E"] = now + self._interval
            self._send_request()
            return 0
        if name == "F" and self.state in (ClientState.TRYING, ClientState.PROCEEDING):
            self.local_final = 408
            self._finish()
            return 408
        return 0


def new_client_transaction(request: SipMsg, dest: Dest,
                           settings: TimerSettings = DEFAULT_TIMERS,
                           branch: str | None = None, sink: Sink | None = None
                           ) -> ClientTransaction:
    """The client transaction for ``request`` (its top Via branch names the transaction;
    ``branch``: that branch when the caller knows it, else read from the Via)."""
    if request.method == "INVITE":
        return InviteClientTransaction(request, dest, settings, branch, sink)
    return NonInviteClientTransaction(request, dest, settings, branch, sink)
