"""A real media relay for tests: Debian's rtpengine in userspace, on its rtpproxy-compatible port.

Debian bookworm has no ``rtpproxy`` package; ``rtpengine-daemon`` is there, and its
``--listen-udp`` control port speaks the rtpproxy protocol (V, VF, U, L, D) that Kamailio's
rtpproxy module speaks. With ``--table=-1`` it forwards media in userspace, without its kernel
module. The daemon logs every command it gets (``--log-level=6``): tests read what each SIP
server asked for.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from kemi_core.testing.daemon import Daemon
from kemi_core.testing.process import free_port
from kemi_core.testing.wait import wait_until

RTPENGINE = "rtpengine"
#: How many media ports the relay may open (--port-min .. --port-min + MEDIA_PORTS).
MEDIA_PORTS = 400
_COMMAND = re.compile(r"Got valid command from udp:[^:]+:\d+: (\S+) (.*)$")


def rtpengine_available() -> bool:
    """Debian's rtpengine (package rtpengine-daemon) is installed."""
    return shutil.which(RTPENGINE) is not None


def ephemeral_ports(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")
                    ) -> tuple[int, int]:
    """The kernel's range of ports for ``bind(port 0)`` (Linux's default if unreadable)."""
    try:
        low, high = path.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def xdist_worker() -> tuple[int, int]:
    """(this pytest-xdist worker's index, the number of workers); (0, 1) in a serial run."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        index = int(name[2:]) if name.startswith("gw") else 0
    except ValueError:
        return 0, 1
    return (index, count) if 0 <= index < count else (0, 1)


def media_range_start(ephemeral: tuple[int, int] | None = None,
                      worker: tuple[int, int] | None = None) -> int:
    """An even first media port whose range lies outside the ephemeral ports (below them, else
    above them; anywhere when neither side has room), in this xdist worker's own slice of that
    span (``worker``: index and count, default from the environment).

    rtpengine binds its media ports with SO_REUSEADDR, as SIP servers bind theirs: a media port
    equal to a SIP server's (``free_port`` and port-0 sockets take ephemeral ports) would take
    that server's datagrams until rtpengine deletes the call (30 s after a D); so would another
    worker's relay on an overlapping range."""
    low, high = ephemeral or ephemeral_ports()
    span = MEDIA_PORTS + 2
    if low - span > 1024:
        first, last = max(low - span - 12000, 1024), low - span
    elif high + span < 65535:
        first, last = high + 2, min(high + 2 + 12000, 65535 - span)
    else:
        first, last = 1024, 65535 - span
    index, count = worker or xdist_worker()
    slice_len = (last - first) // count
    if slice_len > span:  # room for a whole range per worker: the slices never overlap
        first = first + index * slice_len
        last = first + slice_len - span
        first += first % 2  # not one below the slice: the previous slice's RTCP may end there
    return random.randrange(first - first % 2, last - last % 2 + 2, 2)


class RtpEngineProcess(Daemon):
    """``with RtpEngineProcess(workdir) as rtp:`` runs rtpengine on ``rtp.port`` (127.0.0.1);
    ready once it answers ``V``. ``rtp.sock`` is the rtpproxy_sock value for it."""

    def __init__(self, workdir: Path, ready_timeout: float = 15.0) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.media_min = media_range_start()
        self.log_path = workdir / "rtpengine.log"
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    def start(self) -> RtpEngineProcess:
        conf = self.workdir / "rtpengine.conf"
        conf.write_text("[rtpengine]\n")  # no /etc/rtpengine defaults (kernel table, ports)
        args = [RTPENGINE, f"--config-file={conf}", "--table=-1", "--interface=127.0.0.1",
                f"--listen-udp=127.0.0.1:{self.port}", "--foreground", "--log-stderr",
                "--log-level=6", f"--port-min={self.media_min}",
                f"--port-max={self.media_min + MEDIA_PORTS}", "--num-threads=2"]
        proc = self.spawn(args, self.workdir)
        deadline = time.monotonic() + self.ready_timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"rtpengine exited with {proc.returncode}:\n"
                                       f"{self.log()}")
                s.sendto(b"ready V", ("127.0.0.1", self.port))
                try:
                    if s.recv(100).startswith(b"ready 20040107"):
                        return self
                except OSError:
                    continue
        self.stop()
        raise RuntimeError(f"rtpengine did not answer V:\n{self.log()}")

    def commands(self, containing: str = "") -> list[str]:
        """Every command received (cookie left out), in order, those with ``containing``."""
        out = []
        for line in self.log().splitlines():
            m = _COMMAND.search(line)
            if m and containing in m.group(2):
                out.append(m.group(2).strip())
        return out

    def flush(self, timeout: float = 5.0) -> None:
        """Return once rtpengine has logged a command sent now: what it received before (the
        commands of a call whose replies a test has seen) is in its log too."""
        self._flushes = getattr(self, "_flushes", 0) + 1
        cookie = f"flush{self._flushes}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(f"{cookie} V".encode(), ("127.0.0.1", self.port))
            s.recv(100)
        wait_until(lambda: f": {cookie} V" in self.log(), timeout, f"rtpengine to log {cookie}")

    def __enter__(self) -> RtpEngineProcess:
        return self.start()
