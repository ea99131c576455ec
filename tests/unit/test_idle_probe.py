"""kemi_core.runtime.idle_probe: the main process tells a worker that waits for events (asleep
in epoll_wait, nothing unread in its sockets) from one that runs, sleeps elsewhere, is stopped,
or leaves a datagram unread; on real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from kemi_core.runtime.idle_probe import IdleProbe, sleeping
from kemi_core.runtime.procfs import ProcFiles
from kemi_core.testing.wait import wait_until

WAITS = "import select; select.epoll().poll(60)"
SPINS = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"
SLEEPS = "import time; time.sleep(60)"


@pytest.fixture
def start() -> Iterator[Callable[[str], int]]:
    started: list[subprocess.Popen[bytes]] = []

    def run(code: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", code])
        started.append(proc)
        return proc.pid

    yield run
    for proc in started:
        proc.kill()
        proc.wait()


def settles(probe: IdleProbe, pid: int, expected: bool | None) -> None:
    """Until the probe says ``expected`` (the child needs a moment to get where it goes)."""
    wait_until(lambda: probe.waiting(1, pid, reading=False) is expected, 10,
               f"pid {pid} seen as {expected}")


def test_a_process_in_epoll_wait_waits_and_others_do_not(start: Callable[[str], int]) -> None:
    probe = IdleProbe()
    waits, spins, sleeps = start(WAITS), start(SPINS), start(SLEEPS)
    settles(probe, waits, True)
    settles(probe, sleeps, False)  # asleep, but not waiting for events
    wait_until(lambda: probe.files.read(spins, "wchan") == b"0", 10, "the spinner running")
    assert probe.waiting(1, spins, reading=False) is False
    probe.files.close()


def test_a_stopped_process_does_not_wait(start: Callable[[str], int]) -> None:
    probe = IdleProbe()
    pid = start(WAITS)
    settles(probe, pid, True)
    os.kill(pid, signal.SIGSTOP)
    try:
        settles(probe, pid, False)
    finally:
        os.kill(pid, signal.SIGCONT)
    settles(probe, pid, True)
    probe.files.close()


def test_data_left_in_its_socket_is_no_plain_wait(start: Callable[[str], int]) -> None:
    probe = IdleProbe()
    pid = start(WAITS)
    settles(probe, pid, True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        held.bind(("127.0.0.1", 0))
        probe.watch_sockets(1, [held])
        probe.look()
        assert probe.waiting(1, pid, reading=True) is True
        sender.sendto(b"x", held.getsockname())
        def seen() -> bool:
            probe.look()
            return probe.waiting(1, pid, reading=True) is False
        wait_until(seen, 10, "the datagram seen")
        assert probe.waiting(2, pid, reading=True) is True  # another rank's socket
        assert probe.waiting(1, pid, reading=False) is True  # a worker not reading (draining)
        held.recv(10)
        probe.look()
        assert probe.waiting(1, pid, reading=True) is True
        probe.unwatch_sockets([held])
    probe.files.close()


def test_a_process_gone_cannot_say(start: Callable[[str], int]) -> None:
    probe = IdleProbe()
    pid = start(WAITS)
    settles(probe, pid, True)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert probe.waiting(1, pid, reading=False) is None
    assert probe.files.read(pid, "wchan") is None
    probe.forget(pid)


def test_a_kept_file_reads_what_is_there_now(start: Callable[[str], int]) -> None:
    files = ProcFiles()
    pid = start(SLEEPS)
    wait_until(lambda: sleeping(files.read(pid, "stat")), 10, "the child asleep")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: not sleeping(files.read(pid, "stat")), 10, "the child stopped")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert files.read(pid, "no-such-file") is None
    files.close()


def test_the_state_is_read_after_the_last_parenthesis() -> None:
    assert sleeping(b"12 (a (b) S) S 1 2 3")
    assert not sleeping(b"12 (a) S) R 1 2 3")
    assert not sleeping(b"12 (x) T 1")
    assert not sleeping(None)
