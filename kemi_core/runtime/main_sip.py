"""What the main process of a forked server sends over SIP, and the replies that come back.

The main process has no SIP transport of its own, yet a module may send requests from it once
for the whole server (dispatcher keepalives, ``core.add_housekeeping``). Kamailio sends those
from a listen socket, so a peer that answers only the proxy's port (a carrier's access list, a
NAT pinhole) answers them. So does kemi:

* sends leave from the listen socket itself: the main process keeps every worker rank's UDP
  sockets (``sockets.RankSockets``), and a datagram sent on one of them leaves from the listen
  address, whichever process writes it (``MainSip.send``);
* our Via's branch starts with ``MAIN_BRANCH`` (``forwarding.branch_rank``): the kernel's
  steering program leaves the reply to its hash, the worker it reaches runs its reply route as
  for any reply (as Kamailio does for a keepalive's) and hands it to the main process's mailbox
  (``to_main``) instead of its transactions; the main process gives it to the handlers modules
  registered (``core.add_main_reply_handler``).

With fork=no there is one process: it sends through its transport and its reply handlers see
the replies, mark or not. Over TCP or TLS the main process hands what it sends to a worker,
which sends it on a connection of its own (``MainSip.stream_send``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.forwarding.branch_rank import MAIN_BRANCH
from kemi_core.sip import SipParseError, parse_datagram
from kemi_core.transport.handoff import MAIN_RANK, Mailbox, decode, encode_received, encode_send

if TYPE_CHECKING:
    from kemi_core.config.model import ListenAddr
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core
    from kemi_core.transport.sockets import RankSockets

log = logging.getLogger("kemi.core")

class MainSip:
    """In the main process: sends from the ranks' listen sockets, replies from its mailbox."""

    def __init__(self, core: Core, listens: list[ListenAddr],
                 rank_sockets: dict[int, RankSockets]) -> None:
        self.core = core
        self.udp = [(lst.host, lst.port) for lst in listens if lst.proto == "udp"]
        #: the server's own dict (a rank stopping for good leaves it): read at each send
        self.rank_sockets = rank_sockets
        self.mailbox: Mailbox | None = None

    def local_address(self, proto: str = "udp") -> tuple[str, int]:
        """The first UDP listen address (where a worker's requests leave from too)."""
        return self.udp[0] if self.udp else ("127.0.0.1", 5060)

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        """Send ``data`` over UDP from the listen socket ``local`` (the first one when not
        given or not a UDP listen address); False when it cannot go (no rank's socket left,
        the kernel's buffer full: the caller's retransmission tries again). Over TCP or TLS
        a worker sends it (``stream_send``)."""
        if proto != "udp":
            return self.stream_send(proto, host, port, data)
        if not self.udp:
            return False
        if local not in self.udp:
            local = self.udp[0]
        for made in self.rank_sockets.values():
            sock = made.listen.get(local)
            if sock is not None:
                try:
                    sock.sendto(data, (host.strip("[]"), port))
                except OSError as exc:
                    log.debug("main process: send to %s:%s failed: %s", host, port, exc)
                    return False
                return True
        return False

    def stream_send(self, proto: str, host: str, port: int, data: bytes) -> bool:
        """Over TCP or TLS: hand ``data`` to the first worker there (``S``, from rank 0), which
        sends it on its connection to ``host:port``, the worker's holding one or a new one
        from a listen address (as Kamailio opens one for a keepalive); its replies come back
        on that connection, and the worker hands them over as a UDP one's."""
        box = self.mailbox
        if box is None:
            return False
        packet = encode_send(MAIN_RANK, proto, host, port, data)
        return any(box.post(rank, packet) for rank in sorted(self.core.worker_pids))

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the replies workers hand over (once the main loop runs)."""
        try:
            box = Mailbox(os.getpid(), MAIN_RANK, loop)
        except OSError as exc:
            log.error("main process: no mailbox (%s): replies to what it sends are lost", exc)
            return
        self.mailbox = box
        loop.add_reader(box.sock.fileno(), box.drain, self._handed_over)

    def _handed_over(self, packet: bytes) -> None:
        found = decode(packet)
        if found is None or found[0] != "R":
            log.warning("main process mailbox: a hand-over it does not take was dropped")
            return
        try:
            msg = parse_datagram(found[2])
        except SipParseError:
            return
        for handler in self.core.main_reply_handlers:
            if handler(msg):
                return

    def forget(self) -> None:
        """In a new worker: this process's copy of the main process's mailbox closed, and no
        sends from here (the worker has its transport)."""
        self.core.main_sip = None
        if self.mailbox is not None:
            self.mailbox.sock.close()
            self.mailbox = None

    def close(self) -> None:
        box = self.mailbox
        if box is not None:
            box.loop.remove_reader(box.sock.fileno())
            box.close()
            self.mailbox = None


def to_main(mailbox: Mailbox) -> Callable[[MsgContext], bool]:
    """A worker's reply handler (first of all): a reply whose branch names the main process
    goes to its mailbox (True); the reply route has run here already."""

    def hand_over(ctx: MsgContext) -> bool:
        msg = ctx.msg
        try:
            branch = msg.via.branch
        except SipParseError:
            return False
        if not branch or not branch.startswith(MAIN_BRANCH):
            return False
        return mailbox.post(MAIN_RANK, encode_received(ctx.rcv, msg.to_bytes()))

    return hand_over
