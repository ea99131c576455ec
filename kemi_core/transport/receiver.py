"""What every transport hands the core: a parsed message or a parse error, with its RecvInfo.

A transport (UDP, TCP, and the TLS and WebSocket ones built the same way) never passes bytes
up. For each message it received it calls its :class:`Receiver` once:

* ``on_message(msg, rcv)``: a ``SipMsg`` (head split, headers parsed lazily) and where it came
  from;
* ``on_bad_message(data, rcv, error)``: bytes that did not parse as a SIP message, the
  ``SipParseError`` saying why (its status is the one a reply should carry) and where they
  came from. The receiver answers (a 400 when enough can be read) or drops them; a stream
  transport closes the connection afterwards, since its framing is lost.

Keep-alives (CRLF pings, RFC 5626) are no messages: transports drop them. Datagram transports
(UDP; WebSocket frames carry one message each too) parse with :func:`deliver_datagram`; stream
transports (TCP, TLS) frame with ``kemi_core.sip.StreamBuffer``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import attrs

from kemi_core.runtime.ratelimit import RateLimitedLog, brief_error
from kemi_core.sip import ParseLimits, SipMsg, SipParseError, parse_datagram

#: Datagrams that are keep-alives, not messages (RFC 5626 3.5.1 CRLF, and NAT pings of zeros).
KEEPALIVES = (b"\r\n", b"\r\n\r\n", b"\n", b"\x00\x00\x00\x00")

_internal_log = RateLimitedLog(logging.getLogger("kemi.transport"))


def internal_error(exc: BaseException, where: str) -> None:
    """One line (rate-limited) for an error nothing else caught."""
    _internal_log.error("internal", "internal error handling a message (%s): %s", where,
                        brief_error(exc))


@attrs.frozen(slots=True)
class RecvInfo:
    """Where a message came from and on which local socket (Kamailio's ``receive_info``).

    Frozen: one is shared by every message of a stream connection, and by every datagram
    from one source on one UDP socket; whoever changes where a message came from (corex's
    set_source_address) puts a new one in ``ctx.rcv`` (``attrs.evolve``)."""

    proto: str  # "udp" | "tcp" | "tls" | "ws" | "wss"
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int


class Receiver(Protocol):
    """The core's side of a transport (the worker's dispatcher implements it)."""

    def on_message(self, msg: SipMsg, rcv: RecvInfo) -> None: ...

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None: ...


def deliver_datagram(receiver: Receiver, data: bytes, rcv: RecvInfo,
                     limits: ParseLimits) -> None:
    """Parse one datagram and hand it to ``receiver`` (keep-alives are dropped)."""
    if len(data) <= 4 and data in KEEPALIVES:
        return
    try:
        msg = parse_datagram(data, limits)
    except SipParseError as exc:
        receiver.on_bad_message(data, rcv, exc)
        return
    receiver.on_message(msg, rcv)
