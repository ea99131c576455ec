"""The control socket on a shared machine: never taken over from a live server, stale files
replaced, a per-user default path, bounded requests, many clients, one-line client errors."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing.process import KemiProcess, free_port, kemi_executable
from kemi_core.testing.wait import wait_until

from .ops_helpers import assert_no_traceback

pytestmark = [pytest.mark.e2e]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
request_route {{
    sl_send_reply("200", "OK");
}}
"""


def _ctl(srv: KemiProcess) -> str:
    return srv.ctl.removeprefix("unix:")


def _run_second(cfg: Path, ctl: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KEMI_CTL=f"unix:{ctl}")
    return subprocess.run([*kemi_executable(), "run", "-f", str(cfg)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_second_server_on_a_live_socket_refuses_to_start(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    first = start_kemi(CFG.format(port=free_port()))
    other = tmp_path / "other.cfg"
    other.write_text(CFG.format(port=free_port()))
    second = _run_second(other, _ctl(first))
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by a running server" in lines[0], second.stderr
    assert first.rpc("core.version")  # the first one still answers on its socket
    assert Path(_ctl(first)).exists()


def test_stale_socket_is_replaced_and_removed_at_exit(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    ctl = tmp_path / "kemi_ctl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(ctl))  # a socket file nobody listens on (a server that was killed)
    srv = start_kemi(CFG.format(port=free_port()))
    assert "removed the stale control socket" in srv.log()
    assert srv.rpc("core.version")
    assert srv.stop() == 0
    assert not ctl.exists()


def test_a_file_that_is_no_socket_is_left_alone(tmp_path: Path) -> None:
    ctl = tmp_path / "kemi_ctl"
    ctl.write_text("precious")
    cfg = tmp_path / "k.cfg"
    cfg.write_text(CFG.format(port=free_port()))
    res = _run_second(cfg, str(ctl))
    assert res.returncode == 1 and "exists and is not a socket" in res.stderr, res.stderr
    assert ctl.read_text() == "precious"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can use (the pytest temp dir is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="kemi-user-test-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_user(cmd: list[str]) -> list[str]:
    """Run as nobody when we are root (the point is an unprivileged user), else as we are."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run as an unprivileged user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


@pytest.mark.parametrize("with_xdg", [False, True])
def test_unprivileged_run_and_rpc_need_no_flags(shared_dir: Path, with_xdg: bool) -> None:
    cfg = shared_dir / "kamailio.cfg"
    cfg.write_text(CFG.format(port=free_port()))
    cfg.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k not in ("KEMI_CTL", "XDG_RUNTIME_DIR")}
    env["TMPDIR"] = str(shared_dir)
    env["HOME"] = str(shared_dir)
    uid = os.geteuid() if os.geteuid() != 0 else 65534
    expected = shared_dir / f"kemi-{uid}" / "kemi_ctl"
    if with_xdg:
        xdg = shared_dir / "xdg"
        xdg.mkdir(mode=0o700)
        os.chown(xdg, uid, uid)
        env["XDG_RUNTIME_DIR"] = str(xdg)
        expected = xdg / "kemi" / "kemi_ctl"
    log = open(shared_dir / "kemi.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(_as_user([*kemi_executable(), "run", "-f", str(cfg)]), env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answered() -> str | None:
            assert server.poll() is None, (shared_dir / "kemi.log").read_text()
            res = subprocess.run(_as_user([*kemi_executable(), "rpc", "core.version"]), env=env,
                                 capture_output=True, text=True, timeout=30)
            return res.stdout if res.returncode == 0 else None
        assert wait_until(answered, 30, "kemi rpc core.version", interval=0.3)
        assert expected.exists()
        assert (expected.parent.stat().st_mode & 0o777) == 0o700
        assert expected.parent.stat().st_uid == uid
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    assert not expected.exists()
    assert "Traceback" not in (shared_dir / "kemi.log").read_text()


@pytest.mark.parametrize("spec", ["tcp:127.0.0.1:{free}", "unix:/nonexistent/kemi_ctl",
                                  "nonsense", "udp:127.0.0.1:{free}", "unix:{notrpc}"])
def test_rpc_to_an_unusable_socket_is_one_line(spec: str, tmp_path: Path) -> None:
    notrpc = tmp_path / "notrpc"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(notrpc))
    listener.listen(1)  # accepts, never answers: closed below, so the client sees EOF
    target = spec.format(free=free_port(socket.SOCK_STREAM), notrpc=notrpc)
    try:
        proc = subprocess.Popen([*kemi_executable(), "rpc", "-s", target, "core.version"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if "notrpc" in spec:
            conn, _ = listener.accept()
            conn.close()
        out, err = proc.communicate(timeout=30)
    finally:
        listener.close()
    assert proc.returncode == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err


def _raw(sock: socket.socket, data: bytes, lines: int = 1) -> list[dict[str, object]]:
    sock.sendall(data)
    buf = b""
    while buf.count(b"\n") < lines:
        chunk = sock.recv(65536)
        assert chunk, buf
        buf += chunk
    return [json.loads(x) for x in buf.splitlines()]


def test_oversized_and_deep_requests_get_errors_on_a_live_connection(
        start_kemi: Callable[..., KemiProcess]) -> None:
    srv = start_kemi(CFG.format(port=free_port()))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(_ctl(srv))
        long_line = b'{"jsonrpc":"2.0","id":1,"method":"core.version","params":["' + \
            b"x" * (3 << 20) + b'"]}\n'
        (too_long,) = _raw(sock, long_line)
        assert too_long["error"]["code"] == -32700 and "longer than" in too_long["error"]["message"]
        deep = b'{"jsonrpc":"2.0","id":2,"method":"core.version","params":' + b"[" * 100_000 + \
            b"]" * 100_000 + b"}\n"
        (nested,) = _raw(sock, deep)
        assert nested["error"]["code"] == -32700
        garbage = b"\xff\xfe not json\n{}\n[1,2]\n"
        errors = _raw(sock, garbage, 3)
        assert [e["error"]["code"] for e in errors] == [-32700, -32600, -32600]
        (ok,) = _raw(sock, b'{"jsonrpc":"2.0","id":3,"method":"core.version"}\n')
        assert ok["id"] == 3 and "result" in ok
    assert_no_traceback(srv)


def test_500_concurrent_clients_are_all_served(start_kemi: Callable[..., KemiProcess]) -> None:
    srv = start_kemi(CFG.format(port=free_port()))
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(500):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(_ctl(srv))
        socks.append(s)
    try:
        for i, s in enumerate(socks):
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": "core.uptime"}).encode()
                      + b"\n")
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, [i, b""])
        answered: set[int] = set()

        def progress() -> bool:
            for key, _ in sel.select(timeout=0.2):
                data = key.data
                chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                data[1] += chunk
                if data[1].endswith(b"\n"):
                    reply = json.loads(data[1])
                    assert reply["id"] == data[0] and "result" in reply
                    answered.add(data[0])
                    sel.unregister(key.fileobj)
            return len(answered) == 500
        wait_until(progress, 60, lambda: f"500 answers ({len(answered)} so far)", interval=0)
    finally:
        for s in socks:
            s.close()
    assert_no_traceback(srv)
