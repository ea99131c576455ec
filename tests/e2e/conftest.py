"""End-to-end fixtures: configs written to a temp dir, kemi started as a real process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.sipp import sipp_available

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
