"""Messages handed between workers: sends to the worker that holds a stream connection, replies
to the worker that holds their transaction.

A TCP, TLS or WebSocket connection lives in the worker that accepted (or opened) it: its socket,
its TLS session, its WebSocket state. With several workers a request for a WebSocket client
may be routed by another worker (a UDP INVITE lands on any of them), and the client's reply
comes back on its connection, in the worker that holds it, not in the one that holds the
transaction. Kamailio passes connections between processes; kemi passes messages instead:

* every stream connection is recorded in a shared table, peer ``ip:port`` -> worker rank
  (``OWNERS``);
* a worker that must send on a connection it does not hold hands the bytes to its owner
  (``S``, naming itself; the main process hands a worker what it sends over TCP or TLS so, and
  that worker sends it as its own, on a new connection if need be); when the owner finds the connection gone (closed since the table
  said otherwise), it hands them back (``F``): the sender then does what a send to a
  connection nobody holds does (a new TCP/TLS connection; a WebSocket cannot be reopened) and,
  when that fails too, tells the core the send failed (tm fails the branch at once, as
  Kamailio's t_relay would have);
* the branch of what a worker sends names it (its rank mark, ``forwarding.branch_rank``); a
  reply that arrives in another worker (on a stream connection that one holds, or on the
  shared UDP port when the kernel did not steer it, ``steer``) is handed to that one (``R``),
  with the RecvInfo it arrived with, so the transaction sees it as if it had come in there;
  so is a new request that reaches a worker draining to be recycled (to the next worker).

The workers talk over Linux abstract AF_UNIX datagram sockets named after the main process
(nothing in the file system); a hand-over is a kind byte, NUL-separated fields, then the SIP
bytes, and what one loop turn hands to a worker goes as one datagram (several: a bundle).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from itertools import accumulate, pairwise
from typing import Any

from kemi_core.transport import outbox
from kemi_core.transport.receiver import RecvInfo

log = logging.getLogger("kemi.transport")

#: the main process's rank in hand-overs (its mailbox's, ``runtime.main_sip``; workers: 1..N)
MAIN_RANK = 0
#: the shared-store table of stream connections: "ip:port" -> owner rank
OWNERS = "core:stream_owners"
#: how many times a worker has recorded or forgotten a connection in ``OWNERS``, across the
#: server's processes (made before the workers fork): the owners a worker keeps are good while
#: it has not moved
OWNERS_CHANGED: Any = multiprocessing.Value("q", 0)
#: the same counter, read without its lock (a 64-bit read is whole; a change takes the lock)
owners_seen: Any = OWNERS_CHANGED.get_obj()
#: a datagram can carry a SIP message of max_msg_size (and more) with its header
_BUF = 256 * 1024


def mailbox_name(main_pid: int, rank: int) -> bytes:
    return f"\0kemi-{main_pid}-w{rank}".encode()


def owner_key(host: str, port: int, proto: str) -> str:
    """The owners table's key of a connection with peer ``host:port`` over ``proto``: by its
    base transport (TLS for tls/wss, else plain TCP), so a client using one source port for a
    ws:// and a wss:// connection (to our two listeners) has both found, each in its worker."""
    base = "tls" if proto in ("tls", "wss") else "tcp"
    return f"{base}:{host}:{port}"


def owners_changed() -> None:
    """Say that ``OWNERS`` changed (after the change): the others read it again."""
    with OWNERS_CHANGED.get_lock():
        owners_seen.value += 1


def encode_send(sender: int, proto: str, host: str, port: int, data: bytes) -> bytes:
    return b"S" + f"{sender}\0{proto}\0{host}\0{port}\0".encode() + data


def encode_failed(proto: str, host: str, port: int, data: bytes) -> bytes:
    return b"F" + f"{proto}\0{host}\0{port}\0".encode() + data


def encode_received(rcv: RecvInfo, data: bytes) -> bytes:
    head = f"{rcv.proto}\0{rcv.src_ip}\0{rcv.src_port}\0{rcv.dst_ip}\0{rcv.dst_port}\0"
    return b"R" + head.encode() + data


#: each kind of hand-over by its first byte: its name and how many fields come before its data
_KINDS = {b"S": ("S", 4), b"R": ("R", 5), b"F": ("F", 3)}


def decode(packet: bytes) -> tuple[str, list[str], bytes] | None:
    """(kind, fields, data) of a handed-over message, None when malformed."""
    found = _KINDS.get(packet[:1])
    if found is None:
        return None
    kind, nfields = found
    parts = packet.split(b"\0", nfields)
    if len(parts) != nfields + 1:
        return None
    data = parts.pop()
    # the fields decoded at once (a NUL is never part of a UTF-8 sequence), the kind cut off
    return kind, b"\0".join(parts)[1:].decode().split("\0"), data


#: hand-overs waiting for a busy worker (its queue holds only net.unix.max_dgram_qlen
#: datagrams, 10 by default); past this many per worker, newer ones are dropped
MAX_WAITING = 4096

#: the first byte of a datagram carrying several hand-overs: then their count (2 bytes),
#: their lengths (4 bytes each), the hand-overs one after the other
BUNDLE = b"M"
#: the bytes a bundle may carry at most before it goes out (well under the socket's buffers)
BUNDLE_MAX = 64 * 1024
#: the hand-overs a bundle may carry at most (its count is 2 bytes)
BUNDLE_COUNT = 1024


def bundle(packets: list[bytes]) -> bytes:
    """One datagram for several hand-overs (one alone goes as it is)."""
    count = len(packets)
    if count == 1:
        return packets[0]
    return BUNDLE + struct.pack(f">H{count}I", count, *map(len, packets)) + b"".join(packets)


def unbundle(datagram: bytes) -> list[bytes]:
    """The hand-overs a datagram carries, in order (none when it is malformed)."""
    if datagram[:1] != BUNDLE:
        return [datagram]
    try:
        count = _COUNT.unpack_from(datagram, 1)[0]
        ends = list(accumulate(struct.unpack_from(f">{count}I", datagram, 3),
                               initial=3 + 4 * count))
    except struct.error:
        return []
    if ends[-1] != len(datagram):
        return []
    return [datagram[start:end] for start, end in pairwise(ends)]


_COUNT = struct.Struct(">H")


class _Outbox:
    """A socket connected to one worker's mailbox, what this loop turn handed to it (sent as
    one datagram once the turn's events are handled) and what waits for room in its queue (a
    connected AF_UNIX datagram socket polls writable when the peer's queue has room)."""

    __slots__ = ("sock", "held", "held_size", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.held: list[bytes] = []
        self.held_size = 0
        self.waiting: deque[bytes] = deque()


class Mailbox:
    """This worker's socket for messages from the other workers, and its sockets to theirs.

    What one loop turn hands to a worker goes as one datagram at the turn's end: a read that
    brings several messages for connections another worker holds wakes that worker once, not
    once per message (its datagrams, wake-ups and reads are most of what a call split between
    two workers costs over one worker's). A handler about to block sends them first
    (``outbox.about_to_wait``), as it does the UDP sends held for its event."""

    def __init__(self, main_pid: int, rank: int, loop: asyncio.AbstractEventLoop,
                 on_lost: Callable[[bytes], None] | None = None) -> None:
        self.main_pid = main_pid
        self.rank = rank
        self.loop = loop
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(mailbox_name(main_pid, rank))
        self.sock.setblocking(False)
        self._out: dict[int, _Outbox] = {}
        #: the outboxes holding hand-overs of this turn, by rank (their send is scheduled)
        self._holding: dict[int, _Outbox] = {}
        #: told of each hand-over that could not reach its worker after post took it
        self.on_lost = on_lost

    def post(self, rank: int, packet: bytes) -> bool:
        """Hand ``packet`` to worker ``rank`` (at the end of this loop turn, in order); False
        when it cannot take it (not there)."""
        box = self._out.get(rank)  # _outbox's usual answer read here: once per hand-over
        if box is None:
            box = self._outbox(rank)
            if box is None:
                return False
        held = box.held
        if not held:
            holding = self._holding
            if not holding:
                self.loop.call_soon(self.send_held)
                outbox.held_elsewhere.append(self.send_held)  # a handler about to block: first
            holding[rank] = box
        held.append(packet)
        box.held_size += len(packet)
        if box.held_size >= BUNDLE_MAX or len(held) >= BUNDLE_COUNT:
            self._send_bundle(rank, box)
        return True

    def send_held(self) -> None:
        """Send what this turn handed over: one datagram per worker."""
        holding = self._holding
        while holding:
            rank, box = holding.popitem()
            self._send_bundle(rank, box)
        elsewhere = outbox.held_elsewhere
        if self.send_held in elsewhere:
            elsewhere.remove(self.send_held)

    def _send_bundle(self, rank: int, box: _Outbox) -> None:
        held = box.held
        if not held:
            return
        box.held, box.held_size = [], 0
        datagram = bundle(held)
        for _ in range(2):  # a worker restarted since we connected: connect again once
            if box.waiting:
                if len(box.waiting) >= MAX_WAITING:
                    log.warning("worker %d is %d hand-overs behind: %d dropped", rank,
                                len(box.waiting), len(held))
                    break
                box.waiting.append(datagram)
                return
            try:
                box.sock.send(datagram)
            except BlockingIOError:
                box.waiting.append(datagram)
                self.loop.add_writer(box.sock.fileno(), self._flush, rank, box)
                return
            except OSError as exc:
                log.warning("handing a message to worker %d failed: %s", rank, exc)
                self._drop(rank)
                found = self._outbox(rank)
                if found is None:
                    break
                box = found
                continue
            return
        if self.on_lost is not None:
            for packet in held:
                self.on_lost(packet)

    def _outbox(self, rank: int) -> _Outbox | None:
        box = self._out.get(rank)
        if box is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(mailbox_name(self.main_pid, rank))
            except OSError as exc:
                sock.close()
                log.warning("handing a message to worker %d failed: %s", rank, exc)
                return None
            box = self._out[rank] = _Outbox(sock)
        return box

    def _flush(self, rank: int, box: _Outbox) -> None:
        """The worker's queue has room again: send what waits, in order."""
        waiting = box.waiting
        while waiting:
            try:
                box.sock.send(waiting[0])
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("handing %d messages to worker %d failed: %s", len(waiting), rank,
                            exc)
                self._drop(rank)
                return
            waiting.popleft()
        self.loop.remove_writer(box.sock.fileno())

    def _drop(self, rank: int) -> None:
        box = self._out.pop(rank, None)
        if box is not None:
            self.loop.remove_writer(box.sock.fileno())
            box.sock.close()

    def drain(self, handle: Callable[[bytes], None],
              ended: Callable[[], None] | None = None) -> None:
        """Read every waiting packet (from the event loop's reader callback); ``ended`` is
        called after each datagram's packets."""
        for _ in range(1000):
            try:
                datagram = self.sock.recv(_BUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("worker mailbox: %s", exc)
                return
            for packet in unbundle(datagram):
                try:
                    handle(packet)
                except Exception:  # one bad hand-over must not stop the others
                    log.exception("handling a message from another worker failed")
            if ended is not None:
                try:
                    ended()
                except Exception:
                    log.exception("handling a message from another worker failed")

    def close(self) -> None:
        self.send_held()
        for rank in list(self._out):
            self._drop(rank)
        self.sock.close()


def main_pid() -> int:
    """The server's main process (the workers' parent; this process with fork=no)."""
    return os.getppid()
