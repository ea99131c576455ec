"""Shared pieces of the SIPp benchmarks: CPU accounting of a process tree, Kamailio runner."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kemi_core.testing.kamailio import KAMAILIO_MPATH
from kemi_core.testing.kamailio import kamailio_available as _kamailio_with

CLK_TCK = os.sysconf("SC_CLK_TCK")
__all__ = ["KAMAILIO_MPATH"]


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _tasks(root: int) -> Iterator[tuple[int, str]]:
    """(pid, tid) of every thread of ``root``'s tree."""
    for pid in tree_pids(root):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            yield pid, tid


def cpu_by_pid(root: int) -> tuple[dict[int, int], int]:
    """(ns on a CPU per process, voluntary switches) of ``root``'s tree, all threads."""
    per: dict[int, int] = {}
    sleeps = 0
    for pid, tid in _tasks(root):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                per[pid] = per.get(pid, 0) + int(fh.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                for line in fh:
                    if line.startswith("voluntary_ctxt_switches"):
                        sleeps += int(line.split()[1])
        except OSError:
            continue
    return per, sleeps


def _cpu_ticks(pid: int) -> tuple[str, int] | None:
    """(command name, user + system CPU in clock ticks) of ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            head, rest = fh.read().rsplit(")", 1)
    except OSError:
        return None
    fields = rest.split()
    return head.split("(", 1)[1], int(fields[11]) + int(fields[12])  # utime, stime


def task_ticks(root: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(user, system) clock ticks of every thread of ``root``'s tree, keyed (pid, tid): where
    a process tree's CPU goes, split by process, thread and mode."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for pid, tid in _tasks(root):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid, int(tid)] = (int(fields[11]), int(fields[12]))
    return out


def split_us(root: int, before: dict[tuple[int, int], tuple[int, int]],
             after: dict[tuple[int, int], tuple[int, int]], units: int) -> dict[str, list[float]]:
    """[user, system] microseconds per unit of each thread that ran between two task_ticks,
    keyed "main" (the root process) or "child<n>" (the n-th child forked), with "/t<n>" for
    its n-th other thread."""
    children = sorted({pid for pid, _ in after if pid != root})
    threads: dict[int, list[int]] = {}
    for pid, tid in sorted(after):
        if tid != pid:
            threads.setdefault(pid, []).append(tid)
    out = {}
    for (pid, tid), (user, system) in sorted(after.items()):
        u0, s0 = before.get((pid, tid), (0, 0))
        if user - u0 or system - s0:
            name = "main" if pid == root else f"child{children.index(pid) + 1}"
            if tid != pid:
                name += f"/t{threads[pid].index(tid) + 1}"
            out[name] = [round((user - u0) / CLK_TCK / units * 1e6, 1),
                         round((system - s0) / CLK_TCK / units * 1e6, 1)]
    return out


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by ``root`` and its live descendants."""
    ticks = (_cpu_ticks(pid) for pid in tree_pids(root))
    return sum(t[1] for t in ticks if t is not None) / CLK_TCK


def per_process_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of each live process of the tree, keyed "pid name"."""
    out = {}
    for pid in tree_pids(root):
        got = _cpu_ticks(pid)
        if got is not None:
            out[f"{pid} {got[0]}"] = got[1] / CLK_TCK
    return out


def kamailio_available() -> bool:
    return _kamailio_with("app_lua.so")


class Proc:
    """A server process started in its own session, stopped by its PID. A kemi gets a control
    socket of its own in ``cwd`` unless ``env`` names one (KEMI_CTL): the default one may be
    held by another kemi running on this machine (a bench must never take it over)."""

    def __init__(self, args: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        env.setdefault("KEMI_CTL", f"unix:{cwd}/{log.stem}_ctl")
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                      env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self.log.close()


def wait_udp_answer(port: int, timeout: float = 20.0) -> bool:
    """Poll with OPTIONS until the server at 127.0.0.1:port answers anything."""
    import socket

    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        lport = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            msg = (f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKwait{n};rport\r\n"
                   f"From: <sip:w@127.0.0.1>;tag=w{n}\r\nTo: <sip:ping@127.0.0.1>\r\n"
                   f"Call-ID: wait{n}@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n").encode()
            sock.sendto(msg, ("127.0.0.1", port))
            sock.settimeout(0.3)
            try:
                sock.recvfrom(65535)
                return True
            except TimeoutError:
                continue
    return False


def kamailio_args(work: Path) -> Callable[[Path], list[str]]:
    # -m 512: with its default shared memory (64 MB) Kamailio 5.6 runs out after ~2,300 calls
    # at 500 calls/s ("new_t(): out of mem") and answers 500: kemi has no such pool.
    return lambda cfg: ["kamailio", "-f", str(cfg), "-DD", "-E", "-m", "512", "-w", str(work),
                        "-Y", str(work), "-P", str(work / "kamailio.pid")]
