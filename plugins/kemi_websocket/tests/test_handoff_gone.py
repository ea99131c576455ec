"""A request relayed to a stream connection another worker holds, when that connection is gone
by the time the hand-over reaches its worker (kemi_core.transport.handoff): the relay fails at
once, as it does when the connection is known to be gone (Kamailio 5.6.3's t_relay fails, its
script answers 500), instead of waiting for tm's timer F.

The window is made wide on purpose: the worker holding the callee's connection is stopped
(SIGSTOP) while the callee hangs up and the caller's request is handed over, then continued; it
reads the hang-up before the hand-over (both were queued in that order). Kemi only: Kamailio's
tcp_main holds every connection, it has no hand-over.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.sip import SipMsg
from kemi_core.testing import wait_until
from kemi_websocket.testing import Ua
from kemi_websocket.testing import WebrtcServer as Server

pytestmark = pytest.mark.e2e

#: what the caller gets: Kamailio 5.6.3 answers 500 when its relay to a gone connection fails
#: (test_webrtc_flows); kemi's transaction answers 500 too (its branch's local 503, RFC 3261
#: 16.7), the reason phrase is tm's ("Server Internal Error", not sl_reply_error's)
GONE_STATUS = 500
#: how long the stopped worker stays stopped (the watchdog replaces one after much longer)
STOPPED = 0.5
#: the answer must come well before tm's timer F (fr_timer, 30 s)
ANSWER_WITHIN = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server("kemi", tmp_path_factory.mktemp("handoff-gone")) as srv:
        yield srv


def socket_inodes(pid: int) -> set[str]:
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def holder(server: Server, local_port: int) -> int | None:
    """The pid of the worker holding the server side of the client connection from
    ``local_port`` (None until one has accepted it)."""
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if int(cols[2].split(":")[1], 16) == local_port:  # rem_address: the client's port
            inodes[cols[9]] = True
    for worker in server.proc.rpc("core.workers")["workers"]:
        if inodes.keys() & socket_inodes(worker["pid"]):
            return int(worker["pid"])
    return None


def held_by(server: Server, ua: Ua) -> int:
    port = ua.client.local()[1]
    pid: list[int] = []

    def found() -> bool:
        got = holder(server, port)
        if got is not None:
            pid.append(got)
        return got is not None

    wait_until(found, 5, f"a worker holding the connection from port {port}")
    return pid[0]


def connect_elsewhere(make: object, server: Server, other_pid: int,
                      same: bool = False) -> tuple[Ua, int]:
    """A client (``make()``) whose connection a worker other than ``other_pid`` holds (with
    ``same``: that one)."""
    for _ in range(40):
        ua: Ua = make()  # type: ignore[operator]
        pid = held_by(server, ua)
        if (pid == other_pid) == same:
            return ua, pid
        ua.client.close()
    raise AssertionError("the connections did not land where the test needs them")


def message_while_stopped(server: Server, caller: Ua, callee: Ua, pid: int) -> SipMsg:
    """Stop worker ``pid`` (the callee's), hang the callee up, send the caller's MESSAGE (its
    worker hands it over), continue the worker; the caller's final answer."""
    os.kill(pid, signal.SIGSTOP)
    try:
        callee.client.close()
        uri = f"sip:{callee.user}@127.0.0.1"
        caller.client.send(caller.request("MESSAGE", uri, uri, "Content-Type: text/plain\r\n",
                                          "are you there?"))
        time.sleep(STOPPED)
    finally:
        os.kill(pid, signal.SIGCONT)
    return caller.client.expect(lambda m: not m.is_request and m.status >= 200, ANSWER_WITHIN)


def test_message_handed_to_a_gone_websocket_fails_at_once(server: Server) -> None:
    gina = server.ws("gina")
    with gina.client:
        assert gina.register().status == 200
        frank, frank_pid = connect_elsewhere(lambda: server.ws("frank"), server,
                                             held_by(server, gina))
        assert frank.register().status == 200
        reply = message_while_stopped(server, gina, frank, frank_pid)
        assert reply.status == GONE_STATUS, reply.to_bytes()


def test_message_to_a_gone_websocket_in_the_same_worker_fails_at_once(server: Server) -> None:
    """The same, both connections in one worker: it reads the hang-up, then the request; the
    connection is closing, the relay fails at once (t_relay < 0, sl_reply_error's 500)."""
    gina = server.ws("gina4")
    with gina.client:
        assert gina.register().status == 200
        frank, frank_pid = connect_elsewhere(lambda: server.ws("frank4"), server,
                                             held_by(server, gina), same=True)
        assert frank.register().status == 200
        reply = message_while_stopped(server, gina, frank, frank_pid)
        assert reply.status == GONE_STATUS, reply.to_bytes()


def test_message_handed_to_a_gone_tls_connection_fails_at_once(server: Server) -> None:
    """SIP over TLS: its worker hands the request back, which tries a new connection to the
    client (as Kamailio does), refused at once (nobody listens there any more)."""
    gina = server.ws("gina2")
    with gina.client:
        assert gina.register().status == 200
        hank, hank_pid = connect_elsewhere(lambda: server.tls("hank"), server,
                                           held_by(server, gina))
        assert hank.register_own_address()[0].status == 200
        reply = message_while_stopped(server, gina, hank, hank_pid)
        assert reply.status == GONE_STATUS, reply.to_bytes()
