"""Server transactions (RFC 3261 17.2), sans-IO.

``InviteServerTransaction``: Proceeding -> Completed -> Confirmed -> Terminated, or
Proceeding -> Accepted -> Terminated after a 2xx (RFC 6026).
``NonInviteServerTransaction``: Trying -> Proceeding -> Completed -> Terminated.
Build either with ``InviteServerTransaction(request, reply_dest, settings)`` or
``NonInviteServerTransaction(...)`` (the proxy picks by the request's method).

Inputs: ``send_reply(status, data, now)`` (the transaction user's reply, serialized),
``on_request(msg, now)`` (a retransmitted request or the ACK, as matched by ``keys.server_key``),
``on_timer(now)``. What goes on the wire goes to the machine's ``sink`` (see ``actions``);
``on_request`` returns whether the transaction user must see the message (an ACK of a 2xx);
``next_timer()`` is the next deadline.

* Retransmitted requests are answered with the last reply sent (none yet: absorbed).
* Timer G retransmits a negative final of an INVITE over UDP until the ACK (or Timer H);
  the ACK is absorbed (Confirmed, Timer I).
* In Accepted, INVITE retransmissions are absorbed, more 2xx may be sent (forked 2xx) and an
  ACK is passed up: it answers a 2xx, so it is end to end and must be routed.
* Completed/Accepted linger ``wt_timer`` (Timer J, L); reliable transports do not linger in
  Completed/Confirmed (J, I = 0).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from kemi_tm.actions import Dest, Recorder, Sink, TransactionStateError
from kemi_tm.keys import ServerKey, server_key
from kemi_tm.timers import DEFAULT_TIMERS, EndsAfterTimer, Timers, TimerSettings, earliest

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg


class ServerState(enum.Enum):
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # INVITE only
    ACCEPTED = "accepted"  # INVITE after a 2xx (RFC 6026)
    TERMINATED = "terminated"


class ServerTransaction(EndsAfterTimer):
    """What both server transactions share."""

    TERMINATED_STATE = ServerState.TERMINATED

    __slots__ = ("request", "reply_dest", "settings", "key", "state", "timers",
                 "last_reply", "last_status", "final_status", "sink", "_interval")

    def __init__(self, request: SipMsg, reply_dest: Dest,
                 settings: TimerSettings = DEFAULT_TIMERS, key: ServerKey | None = None,
                 sink: Sink | None = None) -> None:
        self.request = request
        #: where the replies go; none given: a Recorder
        self.sink: Sink = sink if sink is not None else Recorder()
        self.reply_dest = reply_dest
        self.settings = settings
        self.key: ServerKey = key if key is not None else server_key(request)
        self.state = ServerState.PROCEEDING
        self.timers: Timers = {}
        #: bytes of the last reply sent (what a retransmitted request gets again)
        self.last_reply: bytes | None = None
        self.last_status = 0
        #: first final status sent (0: none yet)
        self.final_status = 0
        self._interval = settings.retr_timer1

    @property
    def terminated(self) -> bool:
        return self.state is ServerState.TERMINATED

    def next_timer(self) -> float | None:
        return earliest(self.timers)

    def can_reply(self, status: int) -> bool:
        raise NotImplementedError

    def send_reply(self, status: int, data: bytes, now: float, origin: str = "") -> None:
        """Send the transaction user's reply ``data`` (TransactionStateError when the state
        forbids it); ``origin``: the sink's (statistics)."""
        if not self.can_reply(status):
            raise self._refuse(status)
        self.reply(status, data, now, origin)

    def reply(self, status: int, data: bytes, now: float, origin: str = "") -> None:
        """``send_reply`` for a caller that checked ``can_reply(status)`` already."""
        raise NotImplementedError

    def on_request(self, msg: SipMsg, now: float) -> bool:
        raise NotImplementedError

    def _resend(self) -> None:
        if self.last_reply is not None:
            self.sink.send(self.reply_dest, self.last_reply)

    def _record(self, status: int, data: bytes, origin: str) -> None:
        self.last_reply = data
        self.last_status = status
        if status >= 200 and not self.final_status:
            self.final_status = status
        self.sink.send(self.reply_dest, data, origin)

    def _refuse(self, status: int) -> TransactionStateError:
        return TransactionStateError(
            f"cannot send a {status} reply in state {self.state.value} (already sent "
            f"{self.final_status or 'no final'})")


class InviteServerTransaction(ServerTransaction):
    __slots__ = ()

    def can_reply(self, status: int) -> bool:
        if self.state is ServerState.PROCEEDING:
            return True
        return self.state is ServerState.ACCEPTED and 200 <= status < 300

    def reply(self, status: int, data: bytes, now: float, origin: str = "") -> None:
        self._record(status, data, origin)
        if status < 200:
            return
        if status < 300:
            self.state = ServerState.ACCEPTED
            self.timers["L"] = now + self.settings.wt_timer
            return
        self.state = ServerState.COMPLETED
        if not self.reply_dest.reliable:
            self._interval = self.settings.retr_timer1
            self.timers["G"] = now + self._interval
        self.timers["H"] = now + self.settings.timer_h

    def on_request(self, msg: SipMsg, now: float) -> bool:
        if msg.method == "ACK":
            if self.state is ServerState.COMPLETED:
                self.state = ServerState.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                self._linger("I", 0.0 if self.reply_dest.reliable else self.settings.t4, now)
                return False
            return self.state is ServerState.ACCEPTED
        if self.state in (ServerState.PROCEEDING, ServerState.COMPLETED):
            self._resend()
        return False  # Confirmed / Accepted absorb INVITE retransmissions

    def _fire(self, name: str, now: float) -> int:
        if name == "G" and self.state is ServerState.COMPLETED:
            self._interval = min(2 * self._interval, self.settings.retr_timer2)
            self.timers["G"] = now + self._interval
            self._resend()
        elif name in ("H", "I", "L"):
            self._finish()
        return 0


class NonInviteServerTransaction(ServerTransaction):
    __slots__ = ()

    def __init__(self, request: SipMsg, reply_dest: Dest,
                 settings: TimerSettings = DEFAULT_TIMERS, key: ServerKey | None = None,
                 sink: Sink | None = None) -> None:
        super().__init__(request, reply_dest, settings, key, sink)
        self.state = ServerState.TRYING

    def can_reply(self, status: int) -> bool:
        return self.state in (ServerState.TRYING, ServerState.PROCEEDING)

    def reply(self, status: int, data: bytes, now: float, origin: str = "") -> None:
        self._record(status, data, origin)
        if status < 200:
            self.state = ServerState.PROCEEDING
            return
        self.state = ServerState.COMPLETED
        self._linger("J", 0.0 if self.reply_dest.reliable else self.settings.wt_timer, now)

    def on_request(self, msg: SipMsg, now: float) -> bool:
        if self.state in (ServerState.PROCEEDING, ServerState.COMPLETED):
            self._resend()
        return False  # Trying: nothing to answer with yet

    def _fire(self, name: str, now: float) -> int:
        if name == "J":
            self._finish()
        return 0

