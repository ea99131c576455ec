"""The UDP sends a worker holds while it routes one readiness event's datagrams.

When an event brings several datagrams, the sends their routing makes (replies, forwarded
requests) are held and sent together, in the order they were made, once the event's last
datagram is routed: the kernel's network stack then runs once per event instead of between
every two messages' Python, whose caches it evicts (bench/register.py: ~15 us less per REGISTER
at 2,000/s). An event bringing one datagram holds nothing.

A held send may wait only for the CPU-bound routing of the other datagrams of its event, never
for a handler that blocks (a database lock, a socket, a sleep, a child process):

* the worker's own thread sends what is held once ``HOLD_MAX`` sends are held or the event has
  held for ``HOLD_SECONDS`` (checked after each datagram);
* code about to block calls :func:`about_to_wait` (kemi's database layer, redis, rtpproxy's
  control exchange, the resolver's synchronous lookups do): what is held goes out first;
* anything else that blocks (a script's own ``time.sleep``, socket or ``os.execute``, a
  third-party module) releases the GIL in its blocking call, and the :class:`Flusher` thread,
  its timer armed only while something is held, sends once a send has been held for
  ``HOLD_SECONDS``. Nothing held, nothing armed: a handler that blocks after about_to_wait
  sent what was held (a write-through REGISTER waiting for SQLite's fdatasync) wakes no thread.

The two threads send under one lock, from the front of one list, so sends keep their order.
Compiled (``_fast.udp_send``, Linux), the sends of one UDP socket held in a row go out as one
sendmmsg (a system call per event instead of one per send), the others one by one; the
compiled read-ahead event (``_fast.udp_event``) does hold, release and the flusher's timer
itself for this module's own Outbox and Flusher (the methods here stay the reference).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("kemi.transport")

#: sends held during one readiness event at most before they go out
HOLD_MAX = 32
#: how long an event may hold its first send (s) before it goes out anyway
HOLD_SECONDS = 0.002

#: one held send: the function that sends it now, the datagram, the address
Held = tuple[Callable[[bytes, Any], None], bytes, Any]


class Outbox:
    """A worker's held UDP sends (shared by its UDP sockets, so a reply on one listen socket
    and a request forwarded from another go out in the order they were made)."""

    __slots__ = ("held", "since", "lock", "flusher", "clock", "armed", "direct")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: the sends held in order; None: not holding, a send goes out at once
        self.held: list[Held] | None = None
        #: when the oldest send still held may have been made (clock)
        self.since = 0.0
        #: taken to send what is held (the loop's thread and the flusher's)
        self.lock = threading.Lock()
        self.clock = clock
        #: the safety net for a blocked handler; None (no timerfd): nothing is ever held
        self.flusher: Flusher | None = Flusher(self) if _TIMERFD is not None else None
        #: whether the flusher's timer is set (from the first send held until none is)
        self.armed = False
        #: {send: (fd, family)} of the UDP sockets with nothing queued: their held sends go
        #: out as one sendmmsg per run of one socket's (udp_send), the others one by one
        self.direct: dict[Callable[[bytes, Any], None], tuple[int, int]] = {}

    def hold(self) -> bool:
        """Begin holding (an event with several datagrams); False: sends go out at once (no
        safety net here: no timerfd, or it could not be made)."""
        global holding
        flusher = self.flusher
        if flusher is None:
            return False
        if flusher.thread is None:
            try:
                flusher.start()
            except OSError as exc:
                log.warning("udp: sends are not held (%s)", exc)
                self.flusher = None
                return False
        with self.lock:
            self.held = []
        holding = self
        return True

    def release(self) -> None:
        """Stop holding: send what is held, in order."""
        global holding
        holding = None
        with self.lock:
            held, self.held = self.held, None
            if self.armed:
                self._disarm()
            if held:
                self._send(held)

    def add(self, send: Callable[[bytes, Any], None], data: bytes, addr: Any) -> None:
        """Hold a send (only while holding), sending all at ``HOLD_MAX``; the first one held
        (since the event began or what was held went out) sets the flusher's timer."""
        held = self.held
        assert held is not None
        with self.lock:  # (the flusher may be sending from the same list)
            held.append((send, data, addr))
            if not self.armed:
                self.since = self.clock()
                self.armed = True
                self.flusher.arm()  # type: ignore[union-attr]  # (holding: there is one)
        if len(held) >= HOLD_MAX:
            self.flush()

    def flush(self) -> None:
        """Send what is held, in order; the event goes on holding what comes next."""
        with self.lock:
            self._send_held()

    def flush_late(self) -> None:
        """Send what is held if the oldest has waited ``HOLD_SECONDS`` (after each datagram)."""
        if self.held and self.clock() - self.since >= HOLD_SECONDS:
            self.flush()

    def _send_held(self) -> None:
        # (under the lock) nothing is left held: the timer is cleared until the next send held
        held = self.held
        if held:
            sends = held.copy()
            held.clear()
            self._send(sends)
        if self.armed:
            self._disarm()

    def _send(self, sends: list[Held]) -> None:
        """Send, in order (under the lock)."""
        if udp_send is None:
            for send, data, addr in sends:
                send(data, addr)
            return
        refused = udp_send(sends, self.direct)
        if refused:  # (rare: the peer's ICMP error reported on a later send, and the like)
            self.send_refused(refused)

    def send_refused(self, refused: list[tuple[Held, int]]) -> None:
        """Log the sends udp_send refused, each with its error (also from the compiled
        release, _fast's uo_end_hold)."""
        for (send, _, addr), error in refused:
            sock = send.__self__  # type: ignore[attr-defined]  # (direct: a UdpSocket's)
            log.debug("udp send from %s:%s to %s: %s", sock.local_ip, sock.local_port,
                      addr, OSError(error, os.strerror(error)))

    def _disarm(self) -> None:
        self.armed = False
        self.flusher.disarm()  # type: ignore[union-attr]  # (armed: there is one)


#: the outbox holding now (at most one per process: the worker's), for about_to_wait
holding: Outbox | None = None
#: what else holds sends until the event or the loop turn ends, for about_to_wait: each sends
#: what it holds (the workers' mailbox, kemi_core.transport.handoff, while it holds some; the
#: stream writes of a read, kemi_core.transport.stream)
held_elsewhere: list[Callable[[], None]] = []


def about_to_wait() -> None:
    """Send what the worker holds: call it before anything that may block (a database call, a
    socket exchange, a lookup, a sleep, a child process), so that a reply made before does not
    wait for it. Cheap when nothing is held (the usual case)."""
    box = holding
    if box is not None and box.held:
        box.flush()
    if held_elsewhere:
        for send in tuple(held_elsewhere):  # (a holder leaves the list once it has sent)
            send()


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd() -> tuple[Any, Any] | None:
    """libc's timerfd_create and timerfd_settime (Linux), else None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                        ctypes.POINTER(_Itimerspec)]
    settime.restype = ctypes.c_int
    return create, settime


_TIMERFD = _libc_timerfd()
try:  # the timer set without ctypes (~1 us a call less); Linux only, as timerfd
    if os.environ.get("KEMI_SIP_PURE", "") not in ("", "0"):
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import timer_set, udp_send
except ImportError:
    timer_set = udp_send = None
#: HOLD_SECONDS in ns (timer_set's unit)
_HOLD_NS = int(HOLD_SECONDS * 1e9)
_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = 0o2000000


class Flusher:
    """A daemon thread that sends what an outbox holds once an event has held ``HOLD_SECONDS``
    while the loop's thread is blocked (it releases the GIL in any blocking call).

    It sleeps in a read of a kernel timer (timerfd) that the loop's thread sets when an event
    holds its first send and clears when nothing is held any more (the event ended, or
    about_to_wait, HOLD_MAX or HOLD_SECONDS sent what was held): an event that ends in time
    never wakes it (two system calls for the loop's thread, no GIL taken by the flusher).
    Started at the first event that holds (in the worker: an outbox belongs to the process that
    made it)."""

    __slots__ = ("outbox", "fd", "settime", "off", "thread", "fired")

    def __init__(self, outbox: Outbox) -> None:
        assert _TIMERFD is not None
        self.outbox = outbox
        self.settime = _TIMERFD[1]
        self.fd = -1  # made with the thread, at the first event that holds
        self.off = ctypes.pointer(_Itimerspec())
        self.thread: threading.Thread | None = None
        #: how many times its timer fired (an event held past HOLD_SECONDS)
        self.fired = 0

    def arm(self) -> None:
        """A send is held (the loop's thread, under the outbox's lock): the timer set to
        ``_HOLD_NS`` (read at each use, as the compiled event reads it)."""
        if timer_set is not None:
            timer_set(self.fd, _HOLD_NS)
        else:
            ns = _HOLD_NS
            due = _Itimerspec(_Timespec(0, 0), _Timespec(ns // 10**9, ns % 10**9))
            self.settime(self.fd, 0, ctypes.byref(due), None)

    def start(self) -> None:
        """Make the timer and the thread (at the first event that holds)."""
        assert _TIMERFD is not None
        self.fd = _TIMERFD[0](_CLOCK_MONOTONIC, _TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self.thread = threading.Thread(target=self._run, name="kemi-udp-flusher", daemon=True)
        self.thread.start()

    def disarm(self) -> None:
        """Nothing is held any more (under the outbox's lock)."""
        if timer_set is not None:
            timer_set(self.fd, 0)
        else:
            self.settime(self.fd, 0, self.off, None)

    def _run(self) -> None:
        outbox, read, fd = self.outbox, os.read, self.fd
        while True:
            try:
                read(fd, 8)
            except InterruptedError:
                continue
            self.fired += 1
            try:
                with outbox.lock:
                    # (the timer ran out: a send held HOLD_SECONDS, the event blocked or long;
                    # what comes next sets it again; a timer set again meanwhile may fire
                    # once with nothing to send)
                    outbox.armed = False
                    if outbox.held:
                        outbox._send_held()
            except Exception:  # a send function's own failure; the thread must live on
                log.exception("udp: held sends")
