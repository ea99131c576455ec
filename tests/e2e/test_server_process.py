"""``kemi run`` as a real process with the test-only engine 'replier': UDP and TCP requests,
the control socket, a bad message, and a clean stop by PID."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from kemi_core.sip import SipMsg, StreamBuffer, parse_datagram
from kemi_core.testing.netstat import udp_inodes
from kemi_core.testing.process import KemiProcess, kemi_executable
from kemi_core.testing.udp_client import UdpClient, request, tcp_exchange

# The engine comes from tests/plugins/ (provided by the suite, never installed).
pytestmark = pytest.mark.usefixtures("test_plugins")

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children={children}
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
loadmodule "app_replier.so"
modparam("app_replier", "reason", "OK from replier")
cfgengine "replier"
"""


def test_udp_tcp_rpc_and_stop(start_kemi: Callable[..., KemiProcess], port: int) -> None:
    srv = start_kemi(CFG.format(port=port, children=2))
    assert srv.rpc("core.version").startswith("kemi ")
    cli = subprocess.run([*kemi_executable(), "rpc", "-s", srv.ctl, "core.version"],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0 and cli.stdout.startswith("kemi ")
    bad = subprocess.run([*kemi_executable(), "rpc", "-s", srv.ctl, "no.such.command"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "not found" in bad.stderr
    with UdpClient() as ua:
        ua.send(request("OPTIONS", f"sip:kemi@127.0.0.1:{port}", ua.port), port)
        reply = ua.recv_final()
    assert reply is not None
    msg = parse_datagram(reply)
    assert (msg.status, msg.reason) == (200, "OK from replier")
    tcp_reply = tcp_exchange(request("OPTIONS", f"sip:kemi@127.0.0.1:{port};transport=tcp", 5999,
                                     transport="TCP"), port)
    assert tcp_reply.startswith(b"SIP/2.0 200 OK from replier\r\n")
    procs = srv.rpc("core.psx")
    assert len(procs) == 3  # main + 2 workers
    assert srv.stop() == 0


def test_malformed_request_gets_400_and_worker_survives(start_kemi: Callable[..., KemiProcess],
                                                        port: int) -> None:
    srv = start_kemi(CFG.format(port=port, children=1))
    with UdpClient() as ua:
        good = request("OPTIONS", f"sip:kemi@127.0.0.1:{port}", ua.port)
        # a CSeq of one word: refused by the core (a bad number would reach the script,
        # as on Kamailio: tests/e2e/test_malformed_vs_kamailio.py)
        bad = good.replace(b"CSeq: 1 OPTIONS", b"CSeq: OPTIONS")
        ua.send(bad, port)
        reply = ua.recv_final()
        assert reply is not None and reply.startswith(b"SIP/2.0 400 ")
        ua.send(b"\x00\xffgarbage that is no SIP at all\r\n\r\n", port)  # dropped silently
        ua.send(good, port)
        reply = ua.recv_final()
    assert reply is not None and reply.startswith(b"SIP/2.0 200 ")
    assert srv.proc is not None and srv.proc.poll() is None


def test_pid_file_and_single_process_mode(start_kemi: Callable[..., KemiProcess], port: int,
                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    pid_file = tmp_path / "kemi.pid"
    srv = start_kemi(CFG.format(port=port, children=1).replace("fork=yes", "fork=no"),
                     args=["-P", str(pid_file)])
    assert srv.proc is not None
    assert int(pid_file.read_text()) == srv.proc.pid
    assert len(srv.rpc("core.psx")) == 1  # fork=no: one process does everything
    with UdpClient() as ua:
        ua.send(request("OPTIONS", f"sip:kemi@127.0.0.1:{port}", ua.port), port)
        assert ua.recv_final() is not None
    assert srv.stop() == 0
    assert not pid_file.exists()


def _tcp_options(conn: socket.socket, port: int) -> SipMsg:
    """One OPTIONS over an open connection and its reply (which proves the server took it)."""
    conn.sendall(request("OPTIONS", f"sip:kemi@127.0.0.1:{port};transport=tcp",
                         conn.getsockname()[1], transport="TCP"))
    framer = StreamBuffer()
    while True:
        chunk = conn.recv(65535)  # the socket's timeout is the deadline
        assert chunk, "connection closed before the reply"
        if msgs := framer.feed(chunk):
            return msgs[0]


def test_tcp_connection_limit_and_idle_timeout(start_kemi: Callable[..., KemiProcess],
                                               port: int) -> None:
    cfg = CFG.format(port=port, children=1) + "tcp_max_connections=2\ntcp_connection_lifetime=1\n"
    start_kemi(cfg)
    conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    for conn in conns:  # each answered: both are accepted and counted
        assert _tcp_options(conn, port).status == 200
    last_traffic = time.monotonic()
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert extra.recv(10) == b""  # over tcp_max_connections: closed at once
    extra.close()
    for conn in conns:
        conn.settimeout(10)  # the deadline: 1 s of lifetime plus the sweep's period, with room
        try:
            assert conn.recv(10) == b""  # closed by the idle sweep
        except ConnectionResetError:
            pass
        conn.close()
    # Not before tcp_connection_lifetime has passed without traffic.
    assert time.monotonic() - last_traffic >= 0.9


@pytest.mark.parametrize(("fork", "children", "sockets"), [("yes", 3, 3), ("no", 1, 1)])
def test_rpc_answers_only_once_every_worker_listens(start_kemi: Callable[..., KemiProcess],
                                                    port: int, fork: str, children: int,
                                                    sockets: int) -> None:
    """KemiProcess.start returns at the first RPC answer; by then every worker's socket is
    bound (what the tests rely on instead of sleeping after start)."""
    cfg = CFG.format(port=port, children=children).replace("fork=yes", f"fork={fork}")
    start_kemi(cfg + 'modparam("app_replier", "load_delay_ms", 500)\n')  # a slow script load
    assert len(udp_inodes(port)) == sockets
