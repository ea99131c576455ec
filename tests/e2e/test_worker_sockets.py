"""A worker's UDP sockets outlive it: the main process made them for the worker's rank, so a
worker that replaces a killed one reads the same listen sockets, and the kernel's SO_REUSEPORT
group never changes: a call in progress on another worker keeps its worker (its BYE, its 200,
which the kernel steers by the rank in our branch) across the replacement, and what comes for
the replaced rank meanwhile waits for the new worker. Every worker sends from the listen port
and names it in its Via, as Kamailio does."""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kemi_core.sip import parse_datagram
from kemi_core.testing.messages import downstream_reply
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.udp_client import request
from kemi_core.testing.wait import wait_until

from .ops_helpers import (
    assert_no_traceback,
    options,
    port_served_by_other,
    serving_pid,
    udp_ask,
    workers_ready,
)

pytestmark = [pytest.mark.e2e]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

LUA = """
function ksr_request_route()
    if KSR.hdr.is_present("X-Probe") > 0 then
        KSR.sl.send_reply(200, "pid " .. KSR.pv.get("$pp"))
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas}")
    KSR.tm.t_relay()
end
"""


@contextmanager
def udp_socket(port: int = 0) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.settimeout(5.0)
        yield sock


class Call:
    """A BYE from ``flow`` relayed by tm to ``uas``: ``start`` until the UAS has it (from which
    worker port), ``finish`` answers it and returns what reaches the caller."""

    def __init__(self, port: int, flow: socket.socket, uas: socket.socket) -> None:
        self.port, self.flow, self.uas = port, flow, uas
        self.flow_port = int(flow.getsockname()[1])

    def start(self) -> tuple[int, int]:
        """Send the BYE; the (source port, top Via port) it reaches the UAS with."""
        call_id = uuid.uuid4().hex
        self.flow.sendto(request("BYE", f"sip:callee@127.0.0.1:{self.port}", self.flow_port,
                                 call_id=call_id), ("127.0.0.1", self.port))
        while True:  # tm's retransmissions of other calls' BYEs may come first
            data, (_, src_port) = self.uas.recvfrom(65535)
            self.relayed = parse_datagram(data)
            if self.relayed.call_id == call_id:
                return int(src_port), int(self.relayed.via.port or 5060)

    def finish(self, to_port: int) -> bytes:
        self.uas.sendto(downstream_reply(self.relayed, 200), ("127.0.0.1", to_port))
        return self.flow.recvfrom(65535)[0]


def rank_of(srv: KemiProcess, pid: int) -> int:
    return int(next(w["rank"] for w in srv.rpc("core.workers")["workers"] if w["pid"] == pid))


def replacement(srv: KemiProcess, rank: int, old_pid: int) -> int:
    """The pid of the ready worker of ``rank`` that replaced ``old_pid``."""
    def replaced() -> int | None:
        entry = next(w for w in srv.rpc("core.workers")["workers"] if w["rank"] == rank)
        return entry["pid"] if entry["pid"] not in (0, old_pid) and entry["state"] == "ready" \
            else None
    return int(wait_until(replaced, 15, f"worker {rank} replaced") or 0)


def kill_and_wait(srv: KemiProcess, pid: int) -> int:
    """SIGKILL a worker; the pid of the worker that replaced it (same rank, ready)."""
    rank = rank_of(srv, pid)
    os.kill(pid, signal.SIGKILL)
    return replacement(srv, rank, pid)


def test_replaced_worker_keeps_its_rank_sockets_and_other_calls_keep_their_worker(
        start_kemi: Callable[..., KemiProcess], tmp_path: Path) -> None:
    port, uas_port = free_port(), free_port()
    script = tmp_path / "relay.lua"
    script.write_text(LUA.replace("{uas}", str(uas_port)))
    srv = start_kemi(CFG.format(port=port, script=script))
    workers_ready(srv, 2)
    a_port = free_port()
    pid_a = serving_pid(port, a_port)
    b_port = port_served_by_other(port, pid_a)
    pid_b = serving_pid(port, b_port)
    with udp_socket(uas_port) as uas, udp_socket(a_port) as flow_a, \
            udp_socket(b_port) as flow_b:
        # each rank's send port (its Via port) as the UAS sees it: the listen port
        call_a, call_b = Call(port, flow_a, uas), Call(port, flow_b, uas)
        send_a, via_a = call_a.start()
        send_b, via_b = call_b.start()
        assert (send_a, via_a) == (send_b, via_b) == (port, port)
        assert call_b.finish(send_b).startswith(b"SIP/2.0 200")
        # Round 1: a call is in progress on worker A while B is killed and replaced.
        new_b = kill_and_wait(srv, pid_b)
        assert serving_pid(port, a_port) == pid_a  # A's flows still reach A
        assert serving_pid(port, b_port) == new_b  # B's flows reach B's successor
        assert call_a.finish(send_a).startswith(b"SIP/2.0 200")  # the call ends on A
        # the successor sends from the listen port, and names it in its Via
        assert call_b.start() == (send_b, via_b)
        # Round 2, the other way round: a call in progress on B's successor, A replaced. With
        # two sockets in a reuseport group, one of the two rounds removes the group's first
        # socket: had the group changed, all flows would have swapped workers then.
        rank_a = rank_of(srv, pid_a)
        os.kill(pid_a, signal.SIGKILL)
        # sent while rank A may have no worker: it waits in A's socket for A's successor
        reply = udp_ask(port, options(port, a_port, "X-Probe: 1"), flow_a, timeout=15)
        assert reply is not None and reply.startswith(b"SIP/2.0 200 pid "), srv.log()[-3000:]
        answered_by = int(reply.split(b"\r\n", 1)[0].rsplit(b" ", 1)[1])
        assert answered_by not in (pid_a, new_b)
        new_a = replacement(srv, rank_a, pid_a)
        assert answered_by == new_a
        assert serving_pid(port, b_port) == new_b
        assert call_b.finish(send_b).startswith(b"SIP/2.0 200")
        assert call_a.start() == (send_a, via_a)
        assert call_a.finish(send_a).startswith(b"SIP/2.0 200")
    assert srv.rpc("core.workers")["totals"]["restarts"] == 2
    assert_no_traceback(srv)

