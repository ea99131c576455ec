"""A worker's UDP socket, read and written without asyncio's datagram transport.

asyncio's own transport takes one datagram per readiness event (one select and one trip
through the event loop each) and wraps every send in a method that checks its own buffer
first. Here each readiness event drains the socket (at most ``DRAIN_MAX`` datagrams, so timers
and other sockets still get their turn), and a send is ``sock.sendto`` itself; only when the
kernel's send buffer is full do datagrams wait in a queue for the socket to be writable, in
order, as asyncio's transport keeps them. The entry gate judges each datagram as it is
delivered, so a drain that begins between two datagrams of one event applies to the next one
(tests/unit/test_udp_drain.py).

Every socket reads all of an event's datagrams before it delivers the first (``read_ahead``;
the drain gate still judges each as it is delivered). The kernel's receive path then runs once
per event instead of between every two messages' Python, whose caches it evicts (a REGISTER
costs about twice in the server, bench/register.py, what the same handler costs in process,
bench/register_profile.py; the syscalls are a fifth of the difference). A worker that is
recycled or stopped keeps reading its listen sockets while it drains (``Worker.drain``, started
from its doorbell's or a signal's handler) and closes its copies only once its loop has stopped
(``Worker.run_forever``), never inside an event; the main process keeps each rank's sockets
(``sockets.RankSockets``), so what comes after stays in the kernel for the worker that replaces
this one. Should a socket be closed inside an event all the same, what it read and has not
delivered is not dropped: it goes to ``hand_back`` (the endpoints give it to another worker),
else it is delivered here.

When a read-ahead event brings several datagrams, the sends their routing makes are held in the
worker's :class:`~kemi_core.transport.outbox.Outbox` and go out together after the last one
(sooner when many are held, when the event has held a few ms, or before anything blocks: see
that module). Every other send goes out at once, as it is made.

Compiled (``_fast``, Linux), a read-ahead event is one call: recvmmsg reads 16 datagrams per
system call (none for the read that would find nothing), each comes back with its source's
RecvInfo; the held sends go out as one sendmmsg per run of one socket's (outbox.py); the loop
calls that compiled event itself (``start_read_ahead``), with no Python frame of ours. Without
it, each datagram is one ``recvfrom_into`` (and each send one ``sendto``).

A datagram is read into one reused 64 KiB buffer and copied out at its size. Reading with
``recvfrom(65536)`` instead allocates 64 KiB per datagram and shrinks it in place: with the
messages transactions keep alive, that scatters small blocks over the heap and the worker's
RSS creeps up (a heap that fragments), besides costing twice as much per read.
"""

from __future__ import annotations

import array
import asyncio
import collections
import fcntl
import logging
import os
import socket
import termios
import threading
from collections.abc import Callable
from typing import Any

from kemi_core.sip import ParseLimits, SipParseError, parse_datagram
from kemi_core.sip.syntax import PURE_PYTHON
from kemi_core.transport import outbox as held_sends
from kemi_core.transport.outbox import Outbox
from kemi_core.transport.receiver import (
    KEEPALIVES,
    Receiver,
    RecvInfo,
    deliver_datagram,
    internal_error,
)

try:  # a read-ahead event read in one call (recvmmsg, Linux), see _read_all
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import udp_event, udp_recv, udp_source
except ImportError:  # not built, or not Linux: one recvfrom_into per datagram
    udp_recv = udp_source = udp_event = None

log = logging.getLogger("kemi.transport")

#: datagrams taken per readiness event at most before the loop runs its other work
DRAIN_MAX = 64
#: room for any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6)
RECV_SIZE = 65_536
#: datagrams kept while the send buffer is full; past that they are dropped (UDP may lose them)
QUEUE_MAX = 4096
#: sources whose RecvInfo a socket keeps; past that it starts a new set
SOURCES_MAX = 4096
#: what udp_event takes for deliver_datagram and the outbox's limits (read at each use)
_EVENT_CONSTS = (parse_datagram, SipParseError, internal_error, KEEPALIVES, held_sends)


class UdpSocket:
    """One bound, non-blocking UDP socket of a worker: what arrives goes to ``receiver`` as a
    parsed message (``deliver_datagram``) with the socket's own address as destination."""

    __slots__ = ("loop", "sock", "fd", "receiver", "limits", "local_ip", "local_port",
                 "pending", "closed", "buffer", "waiting", "sources", "read_ahead", "outbox", "loop_thread",
                 "send_held", "hand_back")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, receiver: Receiver,
                 limits: ParseLimits, local_ip: str, local_port: int,
                 outbox: Outbox | None = None) -> None:
        self.loop = loop
        #: where sends wait while a read-ahead event is routed (the worker's, shared)
        self.outbox = Outbox() if outbox is None else outbox
        self.loop_thread = threading.get_ident()
        self.sock = sock
        self.fd = sock.fileno()
        self.receiver = receiver
        self.limits = limits
        self.local_ip = local_ip
        self.local_port = local_port
        #: datagrams waiting for room in the kernel's send buffer
        self.pending: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.closed = False
        #: where each datagram is read before it is copied out at its size
        self.buffer = memoryview(bytearray(RECV_SIZE))
        #: the size of the next datagram waiting (FIONREAD)
        self.waiting = array.array("i", [0])
        #: the RecvInfo of each source address met (frozen, shared by its datagrams): a
        #: datagram costs a dict lookup instead of a RecvInfo made
        self.sources: dict[Any, RecvInfo] = {}
        #: read an event's datagrams before delivering them (see the module's doc)
        self.read_ahead = False
        #: what the outbox holds for this socket's sends (one object: a run of them is one
        #: sendmmsg while the socket is in the outbox's ``direct``, i.e. nothing is queued)
        self.send_held = self.send_now
        #: where datagrams read ahead go when the socket is closed inside their event before
        #: they were delivered (``left_unread``); None: delivered here all the same
        self.hand_back: Callable[[list[tuple[bytes, RecvInfo]]], None] | None = None
        self._direct(True)
        loop.add_reader(self.fd, self._read_ready)

    def start_read_ahead(self) -> None:
        """Read each event's datagrams ahead from now on (a socket never closed while its
        worker runs). Compiled, the loop calls udp_event itself at each readiness event (one
        Python frame less per wake-up), with DRAIN_MAX and _EVENT_CONSTS as they are now."""
        self.read_ahead = True
        if udp_event is not None and not self.closed:
            self.loop.remove_reader(self.fd)
            self.loop.add_reader(self.fd, udp_event, self, DRAIN_MAX, _EVENT_CONSTS)

    def _read_ready(self) -> None:
        if not self.read_ahead:
            self._drain(self._deliver)
            return
        if udp_event is not None:  # compiled: all that follows, in one call
            udp_event(self, DRAIN_MAX, _EVENT_CONSTS)
            return
        got = self._read_all()
        receiver, limits, outbox = self.receiver, self.limits, self.outbox
        # one datagram: nothing to hold sends for
        holding = len(got) > 1 and outbox.hold()
        clock, late = outbox.clock, held_sends.HOLD_SECONDS
        try:
            for at, (data, rcv) in enumerate(got):
                try:
                    deliver_datagram(receiver, data, rcv, limits)
                except Exception as exc:  # the dispatcher guards; the last line of defence
                    internal_error(exc, f"udp from {rcv.src_ip}:{rcv.src_port}")
                if self.closed:  # what is left is handed back, never dropped
                    if at + 1 < len(got):
                        self.left_unread(got, at + 1)
                    return
                if holding and outbox.held and clock() - outbox.since >= late:  # (flush_late)
                    outbox.flush()
        finally:
            if holding:
                outbox.release()

    def left_unread(self, got: list[tuple[bytes, RecvInfo]], first: int) -> None:
        """The socket was closed inside the event that read ``got``, before ``got[first:]``
        were delivered: those go to ``hand_back`` (another worker), else they are delivered
        here, through the receiver as any datagram read (the compiled event calls this too)."""
        rest = got[first:]
        if self.hand_back is not None:
            self.hand_back(rest)
            return
        for data, rcv in rest:
            try:
                deliver_datagram(self.receiver, data, rcv, self.limits)
            except Exception as exc:  # the dispatcher guards; the last line of defence
                internal_error(exc, f"udp from {rcv.src_ip}:{rcv.src_port}")

    def _read_all(self) -> list[tuple[bytes, RecvInfo]]:
        """A read-ahead event's datagrams (DRAIN_MAX at most), each with its source's RecvInfo.
        Compiled: one recvmmsg per 16 datagrams, none that finds nothing, the RecvInfo looked
        up by the raw source address (kept in ``sources`` under it)."""
        if udp_recv is not None:
            got, error = udp_recv(self.fd, DRAIN_MAX, self.sources, self._source_raw)
            if error:
                self.read_error(error)
            return got  # type: ignore[no-any-return]
        items: list[tuple[bytes, Any]] = []
        self._drain(items.append)
        sources = self.sources
        return [(data, sources.get(addr) or self._source(addr)) for data, addr in items]

    def read_error(self, error: int) -> None:
        """A read reported ``error`` (an ICMP error of an earlier send): logged, reading goes on."""
        log.debug("udp error on %s:%s: %s", self.local_ip, self.local_port,
                  OSError(error, os.strerror(error)))

    def _drain(self, take: Callable[[tuple[bytes, Any]], None]) -> None:
        """Read the datagrams waiting (DRAIN_MAX at most), each given to ``take`` as it is read:
        delivered at once, or kept to be delivered after the last one (read ahead)."""
        recvfrom_into, buffer = self.sock.recvfrom_into, self.buffer
        for taken in range(DRAIN_MAX):
            if taken == 1 and not self._more_waiting():
                return
            try:
                size, addr = recvfrom_into(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable and the like: the peer is gone; timers do the rest.
                log.debug("udp error on %s:%s: %s", self.local_ip, self.local_port, exc)
                continue
            take((buffer[:size].tobytes(), addr))
            if self.closed:
                return

    def _deliver(self, item: tuple[bytes, Any]) -> None:
        """One datagram to the receiver, from its source's RecvInfo."""
        data, addr = item
        try:
            rcv = self.sources.get(addr)
            if rcv is None:
                rcv = self._source(addr)
            deliver_datagram(self.receiver, data, rcv, self.limits)
        except Exception as exc:  # the dispatcher guards; this is the last line of defence
            internal_error(exc, f"udp from {addr[0]}:{addr[1]}")

    def _source(self, addr: Any) -> RecvInfo:
        """The RecvInfo of datagrams from ``addr`` to this socket, kept for the next ones."""
        sources = self.sources
        if len(sources) >= SOURCES_MAX:
            sources.clear()
        rcv = sources[addr] = RecvInfo("udp", addr[0], addr[1], self.local_ip, self.local_port)
        return rcv

    def _source_raw(self, raw: bytes) -> RecvInfo:
        """The RecvInfo of datagrams from the raw socket address ``raw`` (udp_recv's key)."""
        sources = self.sources
        if len(sources) >= SOURCES_MAX:
            sources.clear()
        host, port = udp_source(raw)  # type: ignore[misc]  # (udp_recv: there is one)
        rcv = sources[raw] = RecvInfo("udp", host, port, self.local_ip, self.local_port)
        return rcv

    def _more_waiting(self) -> bool:
        """Another datagram waits (its size is not 0). Asked once, after the first datagram of
        an event: most events bring one, and a read that finds none raises BlockingIOError,
        which costs more than this ioctl (1.7 vs 0.5 us). A datagram of 0 bytes reads as none
        here and is taken at the next readiness event."""
        fcntl.ioctl(self.fd, termios.FIONREAD, self.waiting, True)
        return self.waiting[0] > 0

    def sendto(self, data: bytes, addr: Any) -> None:
        """Send; held while a read-ahead event's datagrams are routed (see the module's doc)."""
        outbox = self.outbox
        if outbox.held is not None:
            outbox.add(self.send_held, data, addr)
            return
        self.send_now(data, addr)

    def send_now(self, data: bytes, addr: Any) -> None:
        """Send now; queue it when the send buffer is full (or others are queued already).
        Also called by the outbox's flusher thread while the loop's thread blocks."""
        if self.pending:
            self._queue(data, addr)
            return
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._queue(data, addr)
            if threading.get_ident() == self.loop_thread:
                self.loop.add_writer(self.fd, self._write_ready)
            else:
                self.loop.call_soon_threadsafe(self.loop.add_writer, self.fd, self._write_ready)
        except OSError as exc:
            log.debug("udp send from %s:%s to %s: %s", self.local_ip, self.local_port, addr, exc)

    def send_failed(self, addr: Any, error: int) -> None:
        """The kernel refused a send to ``addr`` with ``error`` (udp_out's): logged, as
        send_now logs it; UDP may lose a datagram."""
        log.debug("udp send from %s:%s to %s: %s", self.local_ip, self.local_port, addr,
                  OSError(error, os.strerror(error)))

    def _direct(self, direct: bool) -> None:
        """Let the outbox send this socket's held sends itself (nothing queued), or not."""
        if direct:
            self.outbox.direct[self.send_held] = (self.fd, int(self.sock.family))
        else:
            self.outbox.direct.pop(self.send_held, None)

    def _queue(self, data: bytes, addr: Any) -> None:
        if not self.pending:
            self._direct(False)  # the outbox's sends of it queue behind, in order
        if len(self.pending) >= QUEUE_MAX:
            log.warning("udp %s:%s: send queue full, datagram to %s dropped", self.local_ip,
                        self.local_port, addr)
            return
        self.pending.append((data, addr))

    def _write_ready(self) -> None:
        pending = self.pending
        while pending:
            data, addr = pending[0]
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp send from %s:%s to %s: %s", self.local_ip, self.local_port,
                          addr, exc)
            pending.popleft()
        self.loop.remove_writer(self.fd)
        if not self.closed:
            self._direct(True)

    def close(self) -> None:
        if self.closed:
            return
        self.outbox.flush()  # what a handler sent before the close still goes out
        self.closed = True
        self._direct(False)
        self.loop.remove_reader(self.fd)
        if self.pending:
            self.pending.clear()
            self.loop.remove_writer(self.fd)
        self.sock.close()
