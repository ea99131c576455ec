"""The test relay's media ports never overlap the ports tests and servers bind to port 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing.rtpengine import (
    MEDIA_PORTS,
    ephemeral_ports,
    media_range_start,
    xdist_worker,
)


@pytest.mark.parametrize("ephemeral", [None, (32768, 60999), (49152, 65535), (20000, 30000),
                                       (1024, 60999), (1100, 50000)])
def test_media_range_lies_outside_the_ephemeral_ports(ephemeral: tuple[int, int] | None) -> None:
    low, high = ephemeral or ephemeral_ports()
    for _ in range(2000):
        start = media_range_start(ephemeral)
        assert start % 2 == 0  # RTP on even ports, RTCP the odd one above
        assert start >= 1024 and start + MEDIA_PORTS <= 65535
        assert start + MEDIA_PORTS < low or start > high


def test_media_range_anywhere_when_the_ephemeral_ports_take_everything() -> None:
    for _ in range(2000):
        start = media_range_start((1024, 65535))
        assert start % 2 == 0 and start >= 1024 and start + MEDIA_PORTS <= 65535


@pytest.mark.parametrize("ephemeral", [(32768, 60999), (1024, 60999), (1024, 65535)])
def test_each_xdist_worker_draws_from_its_own_slice(ephemeral: tuple[int, int]) -> None:
    """Relays of concurrent pytest-xdist workers never share a media port."""
    for count in (2, 3, 4):
        ranges = [[media_range_start(ephemeral, (index, count)) for _ in range(500)]
                  for index in range(count)]
        for index in range(count - 1):  # every range of a worker lies below the next worker's
            assert max(ranges[index]) + MEDIA_PORTS + 1 < min(ranges[index + 1])
        for start in (s for r in ranges for s in r):
            assert start % 2 == 0 and start >= 1024 and start + MEDIA_PORTS <= 65535
            low, high = ephemeral
            assert start + MEDIA_PORTS < low or start > high or (low, high) == (1024, 65535)


def test_xdist_worker_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert xdist_worker() == (1, 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    assert xdist_worker() == (0, 1)  # not one of the workers said: as a serial run
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert xdist_worker() == (0, 1)


def test_ephemeral_ports_read_from_the_kernel_file(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_ports(f) == (40000, 50000)
    assert ephemeral_ports(tmp_path / "missing") == (32768, 60999)
