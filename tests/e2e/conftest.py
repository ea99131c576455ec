"""End-to-end fixtures: configs written to a temp dir, kemi started as a real process."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_on_fixed_ports(start: Callable[..., KemiProcess], cfg: str | Path, ports: tuple[int, ...],
                         what: str, wait: float = 60, **kwargs: Any) -> KemiProcess:
    """Start a config that needs fixed ports (the seed's examples relay to a callee on 5080).
    Another test (or its SIPp) may hold one for a while: wait until all are free, else skip."""
    try:
        wait_until(lambda: all(udp_free(p) for p in ports), wait, f"udp ports {list(ports)} free")
    except WaitTimeout:
        busy = [p for p in ports if not udp_free(p)]
        pytest.skip(f"udp 127.0.0.1:{busy} in use ({what} needs {list(ports)})")
    try:
        return start(cfg, **kwargs)
    except RuntimeError as exc:  # lost a race for the port to another test's server
        if "address already in use" in str(exc):
            pytest.skip(f"{what}: a fixed port was taken while starting")
        raise
