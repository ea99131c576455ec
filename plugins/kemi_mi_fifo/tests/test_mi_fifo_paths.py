"""mi_fifo's FIFO: a relative name goes in kemi's runtime directory, a FIFO another server reads
is never taken over, and the FIFO is removed when the server stops."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

import kemi_mi_fifo
from kemi_core.testing import offline_core


def _core(fifo_name: str) -> kemi_mi_fifo.FifoServer:
    core, _ = offline_core(("mi_fifo", kemi_mi_fifo), params={("mi_fifo", "fifo_name"): fifo_name})
    return core.require("mi_fifo", kemi_mi_fifo.FifoServer)


def test_a_relative_name_goes_beside_the_control_socket(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    monkeypatch.setenv("KEMI_CTL", f"unix:{run / 'kemi_ctl'}")
    monkeypatch.chdir(tmp_path)
    assert _core("kamailio_fifo").path == str(run / "kamailio_fifo")
    assert run.is_dir()  # made (like the control socket's directory) when the module starts
    assert _core(str(tmp_path / "abs_fifo")).path == str(tmp_path / "abs_fifo")


def test_the_default_is_in_the_runtime_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_CTL", f"unix:{tmp_path / 'kemi_ctl'}")
    core, _ = offline_core(("mi_fifo", kemi_mi_fifo))
    assert core.require("mi_fifo", kemi_mi_fifo.FifoServer).path == str(tmp_path / "kemi_fifo")


def test_a_fifo_read_by_a_running_server_is_not_taken_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kamailio_fifo"
    os.mkfifo(path)
    other = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # what a running Kamailio holds
    inode = path.stat().st_ino
    server = _core(str(path))
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="kemi.mi_fifo"):
            server.attach(loop)
        assert f"cannot create FIFO {path}: {path} is read by a running server" in caplog.text
        assert path.stat().st_ino == inode and server.fd == -1
        server.close()  # not ours: left alone
        assert path.stat().st_ino == inode
    finally:
        os.close(other)
        loop.close()


def test_a_stale_fifo_is_replaced_and_removed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "kamailio_fifo"
    os.mkfifo(path)  # left by a server that was killed: nobody reads it
    server = _core(str(path))
    loop = asyncio.new_event_loop()
    try:
        server.attach(loop)
        assert path.is_fifo() and server.fd >= 0
        server.close()
        assert not path.exists()
    finally:
        loop.close()
