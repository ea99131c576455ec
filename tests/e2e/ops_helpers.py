"""Helpers for the operating tests (signals, watchdog, bad input): ready workers, finding which worker serves a source port, checking a log for tracebacks."""

from __future__ import annotations

import socket

from kemi_core.testing.process import KemiProcess
from kemi_core.testing.udp_client import request
from kemi_core.testing.wait import wait_until


def workers_ready(srv: KemiProcess, n: int) -> None:
    """Until the core.workers RPC shows ``n`` workers in state ready."""
    def probe() -> bool:
        workers = srv.rpc("core.workers")["workers"]
        return sum(1 for w in workers if w["state"] == "ready") == n
    wait_until(probe, 15.0, f"{n} ready workers")


def assert_no_traceback(srv: KemiProcess) -> None:
    log = srv.log()
    assert "Traceback" not in log and "Unhandled exception" not in log, log[-4000:]
    assert "Task exception" not in log, log[-4000:]


def options(port: int, local_port: int, extra: str = "") -> bytes:
    return request("OPTIONS", f"sip:probe@127.0.0.1:{port}", local_port, extra=extra)


def udp_ask(port: int, data: bytes, sock: socket.socket | None = None,
            timeout: float = 2.0) -> bytes | None:
    """Send ``data`` (from ``sock`` or a new socket) and return the first reply, or None."""
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    try:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recvfrom(65535)[0]
        except TimeoutError:
            return None
    finally:
        if own:
            sock.close()


def serving_pid(port: int, local_port: int) -> int:
    """The pid of the worker that serves datagrams from 127.0.0.1:local_port (the script
    answers ``X-Probe`` with "200 pid <pid>")."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_port))
        reply = udp_ask(port, options(port, local_port, "X-Probe: 1"), sock)
    assert reply is not None and reply.startswith(b"SIP/2.0 200 pid "), reply
    return int(reply.split(b"\r\n", 1)[0].rsplit(b" ", 1)[1])


def port_served_by_other(port: int, not_pid: int, tries: int = 40) -> int:
    """A free local port whose datagrams reach a worker other than ``not_pid``."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            candidate = int(s.getsockname()[1])
        if serving_pid(port, candidate) != not_pid:
            return candidate
    raise AssertionError("every source port tried reaches the same worker")
