"""ControlServer in-process on a real unix socket: idle clients dropped, the default paths."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kemi_core.rpc import paths
from kemi_core.rpc.server import ControlServer, CtlInUse
from kemi_core.testing.capture import offline_core


def test_idle_client_is_dropped_and_a_busy_one_is_not(tmp_path: Path) -> None:
    core, _ = offline_core()
    path = str(tmp_path / "ctl")

    async def scenario() -> tuple[bytes, bytes]:
        ctl = ControlServer(core, f"unix:{path}", idle_timeout=0.3)
        await ctl.start()
        try:
            idle_r, idle_w = await asyncio.open_unix_connection(path)
            busy_r, busy_w = await asyncio.open_unix_connection(path)
            for _ in range(4):  # a request every 0.15 s keeps it open past 0.3 s
                busy_w.write(b'{"jsonrpc":"2.0","id":1,"method":"core.uptime"}\n')
                await busy_r.readline()
                await asyncio.sleep(0.15)
            idle = await asyncio.wait_for(idle_r.read(), 5)  # EOF: the server closed it
            busy_w.write(b'{"jsonrpc":"2.0","id":2,"method":"core.uptime"}\n')
            busy = await asyncio.wait_for(busy_r.readline(), 5)
            idle_w.close()
            busy_w.close()
            return idle, busy
        finally:
            ctl.close()

    idle, busy = asyncio.run(scenario())
    assert idle == b""
    assert b'"id": 2' in busy and b'"result"' in busy
    assert not os.path.exists(path)


def test_a_live_socket_is_never_taken_over(tmp_path: Path) -> None:
    core, _ = offline_core()
    path = str(tmp_path / "ctl")

    async def scenario() -> None:
        first = ControlServer(core, f"unix:{path}")
        await first.start()
        try:
            with pytest.raises(CtlInUse):
                await ControlServer(core, f"unix:{path}").start()
            assert os.path.exists(path)
        finally:
            first.close()

    asyncio.run(scenario())
    assert not os.path.exists(path)


def test_default_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KEMI_CTL", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert paths.default_spec() == "unix:/run/kemi/kemi_ctl"
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert paths.default_spec() == f"unix:{tmp_path}/kemi-4242/kemi_ctl"
    monkeypatch.setenv("KEMI_CTL", "unix:/x/y")
    assert paths.default_spec() == "unix:/x/y"


def test_runtime_files_go_beside_the_default_control_socket(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    import tempfile

    monkeypatch.delenv("KEMI_CTL", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert paths.runtime_path("kamailio_fifo") == "/run/kemi/kamailio_fifo"
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert paths.runtime_path("kamailio_fifo") == f"{tmp_path}/kemi-4242/kamailio_fifo"
    monkeypatch.setenv("KEMI_CTL", "unix:/x/y")
    assert paths.runtime_path("kamailio_fifo") == "/x/kamailio_fifo"
    monkeypatch.setenv("KEMI_CTL", "tcp:127.0.0.1:2049")  # no directory: the user's default
    assert paths.runtime_path("kamailio_fifo") == f"{tmp_path}/kemi-4242/kamailio_fifo"
    assert paths.runtime_path("/var/tmp/f") == "/var/tmp/f"  # absolute: as it is


def test_private_dir_is_refused_when_others_can_write(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    private = Path(paths.user_runtime_dir())
    private.mkdir(mode=0o777)
    private.chmod(0o777)
    with pytest.raises(paths.CtlPathError, match="writable by other users"):
        paths.prepare_dir(str(private / "kemi_ctl"))
