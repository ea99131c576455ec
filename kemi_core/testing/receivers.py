"""A transport Receiver for tests of the transports: it keeps every event it is given."""

from __future__ import annotations

from kemi_core.sip import SipMsg, SipParseError
from kemi_core.transport.receiver import RecvInfo


class EventRecorder:
    """A Receiver keeping every event: ("msg", SipMsg, RecvInfo) or ("bad", bytes, RecvInfo,
    SipParseError)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_message(self, msg: SipMsg, rcv: RecvInfo) -> None:
        self.events.append(("msg", msg, rcv))

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None:
        self.events.append(("bad", data, rcv, error))
