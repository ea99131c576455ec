"""NAT keepalives: every ``natping_interval`` seconds each registered contact behind NAT gets a
ping, so the NAT keeps its binding open for calls to come in.

Two kinds, as in Kamailio: a stateless SIP request (``sipping_method``, OPTIONS by default) for
contacts whose branch flags have ``sipping_bflag`` (and when ``sipping_from`` is set), else four
zero bytes over UDP. Pings leave from the socket the contact registered on, towards its
received address (or the first Path hop, or the contact itself).

The pinger runs in one process of the server (worker 1, which has the listen sockets), reading
the contacts from usrloc's shared store: each second it pings one part of the AORs (split by
their hash into ``natping_interval`` parts), so every contact is pinged once per interval and
the load is spread. Replies to SIP pings are consumed by every worker's reply handler.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import zlib
from typing import Any, Protocol, runtime_checkable

import attrs

from kemi_core.api import Core, MsgContext, uri_destination
from kemi_core.sip import SipParseError, parse_name_addr

log = logging.getLogger("kemi.nathelper")

UDP_PING = b"\x00\x00\x00\x00"


@runtime_checkable
class ContactSource(Protocol):
    """What the pinger needs of usrloc (its service, ``core.require("usrloc", ...)``)."""

    nat_bflag_mask: int

    def get_all_contacts(self, flags: int = 0, part_idx: int = 0, part_max: int = 1,
                         now: float | None = None) -> list[Any]:
        ...


@attrs.frozen
class PingSettings:
    interval: int
    nated_only: bool
    sipping_from: str
    sipping_method: str
    sipping_mask: int
    disable_mask: int
    force_socket: tuple[str, str, int] | None


def parse_socket(text: str | None) -> tuple[str, str, int] | None:
    """``proto:host:port`` (or ``host:port``, UDP) -> (proto, host, port); None if unusable."""
    if not text:
        return None
    parts = text.strip().split(":")
    if len(parts) >= 3 and parts[0].lower() in ("udp", "tcp", "tls", "sctp"):
        proto, rest = parts[0].lower(), ":".join(parts[1:])
    else:
        proto, rest = "udp", text.strip()
    host, _, port = rest.rpartition(":")
    if not port.isdigit() or not host:
        return None
    return proto, host.strip("[]"), int(port)


class Pinger:
    """Sends the keepalives of one server (one instance, in worker 1)."""

    def __init__(self, core: Core, usrloc: ContactSource, settings: PingSettings) -> None:
        self.core = core
        self.usrloc = usrloc
        self.settings = settings
        self.enabled = True
        self.tick = 0
        self.sent_udp = 0
        self.sent_sip = 0
        self._cseq = itertools.count(1)
        self._callid_base = f"{random.getrandbits(32):08x}-{os.getpid():x}"

    def run_once(self) -> None:
        """One second's share: the contacts of part ``tick % interval`` of the AORs."""
        st = self.settings
        part = self.tick % st.interval
        self.tick += 1
        if not self.enabled:
            return
        flags = self.usrloc.nat_bflag_mask if st.nated_only else 0
        if st.nated_only and not flags:
            return  # nothing can be known to be behind NAT
        try:
            contacts = self.usrloc.get_all_contacts(flags, part, st.interval)
        except Exception:
            log.exception("nathelper: cannot read the registered contacts")
            return
        for c in contacts:
            if st.disable_mask and c.cflags & st.disable_mask:
                continue
            try:
                self.ping(c)
            except Exception:
                log.exception("nathelper: ping to %s failed", c.c)

    def ping(self, c: Any) -> bool:
        st = self.settings
        target = self._target(c)
        if target is None:
            log.debug("nathelper: no address to ping for %s", c.c)
            return False
        proto, host, port = target
        local = self._local(c)
        sip = bool(st.sipping_from) and bool(st.sipping_mask and c.cflags & st.sipping_mask)
        if sip:
            ok = self.core.send(proto, host, port, self.request(c, proto, local), local)
            self.sent_sip += ok
            return ok
        if proto != "udp":
            return False  # a TCP/TLS connection keeps its NAT binding by itself
        ok = self.core.send("udp", host, port, UDP_PING, local)
        self.sent_udp += ok
        return ok

    def _target(self, c: Any) -> tuple[str, str, int] | None:
        uri = c.received or c.c
        if c.path:
            try:
                uri = parse_name_addr(c.path.split(",")[0]).uri_text
            except SipParseError:
                return None
        try:
            return uri_destination(uri)
        except (SipParseError, ValueError):
            return None

    def _local(self, c: Any) -> tuple[str, int] | None:
        sock = self.settings.force_socket or parse_socket(c.socket)
        return (sock[1], sock[2]) if sock is not None else None

    def request(self, c: Any, proto: str, local: tuple[str, int] | None) -> bytes:
        """The stateless SIP ping (Kamailio's shape: no Max-Forwards, From tag = record id)."""
        st = self.settings
        host, port = local if local is not None else self.core.local_address(proto)
        sent_by = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        n = next(self._cseq)
        branch = f"z9hG4bK{zlib.crc32(f'{c.ruid}{n}'.encode()):08x}{n:x}"
        callid = f"{self._callid_base}-{n:x}@{host}"
        lines = [
            f"{st.sipping_method} {c.c} SIP/2.0",
            f"Via: SIP/2.0/{proto.upper()} {sent_by};branch={branch}",
            f"From: {st.sipping_from};tag={c.ruid}",
            f"To: {c.c}",
            f"Call-ID: {callid}",
            f"CSeq: 1 {st.sipping_method}",
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def is_our_reply(self, ctx: MsgContext) -> bool:
        """A reply to one of our SIP pings (answered by nobody else)."""
        msg = ctx.msg
        if msg.is_request:
            return False
        try:
            cseq = msg.cseq
            callid = msg.call_id
        except SipParseError:
            return False
        return cseq.method == self.settings.sipping_method and callid.startswith(
            self._callid_base)
