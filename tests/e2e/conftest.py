"""End-to-end fixtures: configs written to a temp dir, kemi started as a real process."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import sipp_available
from kemi_core.testing.wait import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[2]

needs_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def start_kemi(tmp_path: Path) -> Iterator[Callable[..., KemiProcess]]:
    """``start_kemi(cfg_text, **kwargs)`` writes kamailio.cfg and starts ``kemi run`` (cwd = the
    repository, so the examples' relative script paths work); every server started is stopped."""
    started: list[KemiProcess] = []

    def start(cfg_text: str, name: str = "kamailio.cfg", **kwargs: object) -> KemiProcess:
        cfg = tmp_path / name
        cfg.write_text(cfg_text)
        proc = KemiProcess(cfg, tmp_path, cwd=REPO, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


def udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_on_fixed_ports(start: Callable[..., KemiProcess], cfg_text: str, ports: tuple[int, ...],
                         what: str, wait: float = 60) -> KemiProcess:
    """Start a config whose ports are fixed (the seed's examples). Another test (or its SIPp)
    may hold one for a while: wait until all are free, else skip."""
    try:
        wait_until(lambda: all(udp_free(p) for p in ports), wait, f"udp ports {list(ports)} free")
    except WaitTimeout:
        busy = [p for p in ports if not udp_free(p)]
        pytest.skip(f"udp 127.0.0.1:{busy} in use ({what} needs {list(ports)})")
    try:
        return start(cfg_text)
    except RuntimeError as exc:  # lost a race for the port to another test's server
        if "address already in use" in str(exc):
            pytest.skip(f"{what}: a fixed port was taken while starting")
        raise
