"""End-to-end fixtures: configs written to a temp dir, kemi started as a real process."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import SippExited, SippUas, sipp_available
from kemi_core.testing.wait import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[2]
#: The callee for load runs: SIPp's "uas" that absorbs a proxy's INVITE retransmission after its
#: 200 (SIPp's built-in aborts the call on it, a loaded machine's late 180 then fails a call).
UAS = Path(__file__).parent / "scenarios" / "uas_invite_retrans.xml"

needs_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def start_kemi(tmp_path: Path) -> Iterator[Callable[..., KemiProcess]]:
    """``start_kemi(cfg, **kwargs)`` starts ``kemi run`` on a config: text is written to
    tmp_path/kamailio.cfg, a Path (an example) is used where it is. The working directory is the
    repository unless ``cwd=`` says otherwise. Every server started is stopped."""
    started: list[KemiProcess] = []

    def start(cfg: str | Path, name: str = "kamailio.cfg", **kwargs: Any) -> KemiProcess:
        if isinstance(cfg, str):
            (tmp_path / name).write_text(cfg)
            cfg = tmp_path / name
        kwargs.setdefault("cwd", REPO)
        proc = KemiProcess(cfg, tmp_path, **kwargs)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def start_example(start_kemi: Callable[..., KemiProcess],
                  tmp_path: Path) -> Callable[[Path], tuple[KemiProcess, int]]:
    """``start_example(cfg)``: an example config as it is in the repository, started from
    another directory (its script path is relative to the config's directory) on a free port
    (-l, as beside a Kamailio on 5060). Returns the server and its port."""

    def start(cfg: Path) -> tuple[KemiProcess, int]:
        port = free_port()
        return start_kemi(cfg, args=["-l", f"udp:127.0.0.1:{port}"], cwd=tmp_path), port

    return start


def udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def fixed_port_uas(workdir: Path, port: int, scenario: str | Path, name: str,
                   wait: float = 180) -> Iterator[SippUas]:
    """A SIPp callee on a fixed port (the seed's examples relay to 127.0.0.1:5080). Another
    test's callee (in this run, on another pytest-xdist worker, or in another run on the
    machine) may hold it for a while (a 1,000-call soak: tens of seconds on a loaded machine):
    try until the port is ours, else skip."""

    def attempt() -> SippUas | None:
        if not udp_free(port):
            return None
        try:
            return SippUas(workdir, port, scenario, name=name).start()
        except SippExited:  # lost the race for the port
            return None

    try:
        uas = wait_until(attempt, wait, f"udp 127.0.0.1:{port} for the callee", interval=0.2)
    except WaitTimeout:
        pytest.skip(f"udp 127.0.0.1:{port} stayed in use (the callee of the seed's examples)")
    try:
        yield uas
    finally:
        uas.stop()
