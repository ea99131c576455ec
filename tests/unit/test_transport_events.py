"""UDP and TCP hand the core the same events: a parsed message or a parse error, with RecvInfo.

Real sockets on 127.0.0.1: a worker's endpoints with a receiver that records what it gets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.sip import ParseLimits, SipMsg
from kemi_core.testing.process import free_port
from kemi_core.testing.receivers import EventRecorder
from kemi_core.transport.endpoints import WorkerEndpoints

DEADLINE = 5.0


def options(n: int, port: int, proto: str = "UDP") -> bytes:
    return (f"OPTIONS sip:b@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{proto} 127.0.0.1:5999;branch=z9hG4bKev{n}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=t{n}\r\nTo: <sip:b@127.0.0.1>\r\n"
            f"Call-ID: ev{n}@test\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


class Endpoints:
    """UDP and TCP listeners on one port, run on their own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.rec = EventRecorder()
        listens = [ListenAddr("udp", "127.0.0.1", self.port),
                   ListenAddr("tcp", "127.0.0.1", self.port)]
        self.ep = WorkerEndpoints(self.loop, listens, self.rec, ParseLimits(), shared=False)
        self.loop.run_until_complete(self.ep.start())

    def wait_events(self, count: int) -> list[tuple]:
        """Run the loop until ``count`` events arrived (or the deadline passed)."""
        async def until() -> None:
            end = self.loop.time() + DEADLINE
            while len(self.rec.events) < count and self.loop.time() < end:
                await asyncio.sleep(0.005)
        self.loop.run_until_complete(until())
        events, self.rec.events = self.rec.events, []
        return events

    def settle(self) -> list[tuple]:
        """Events after the loop had a moment to take in what was sent (for "nothing came")."""
        for _ in range(20):
            self.loop.run_until_complete(asyncio.sleep(0.005))
        events, self.rec.events = self.rec.events, []
        return events

    def close(self) -> None:
        self.ep.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


@pytest.fixture
def ends() -> Iterator[Endpoints]:
    e = Endpoints()
    yield e
    e.close()


def send_udp(port: int, *datagrams: bytes) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))
        return int(s.getsockname()[1])


def via_udp(e: Endpoints, *datagrams: bytes, expect: int) -> list[tuple]:
    send_udp(e.port, *datagrams)
    return e.wait_events(expect)


def via_tcp(e: Endpoints, data: bytes, expect: int) -> tuple[list[tuple], int]:
    conn = socket.create_connection(("127.0.0.1", e.port), timeout=DEADLINE)
    try:
        conn.sendall(data)
        events = e.wait_events(expect)
        return events, int(conn.getsockname()[1])
    finally:
        conn.close()


def test_a_message_is_the_same_event_over_udp_and_tcp(ends: Endpoints) -> None:
    data = options(1, ends.port)
    udp = via_udp(ends, data, expect=1)
    tcp, tcp_port = via_tcp(ends, data, expect=1)
    assert [e[0] for e in udp] == [e[0] for e in tcp] == ["msg"]
    (_, umsg, urcv), (_, tmsg, trcv) = udp[0], tcp[0]
    assert isinstance(umsg, SipMsg) and isinstance(tmsg, SipMsg)
    assert umsg.to_bytes() == tmsg.to_bytes() == data
    assert (umsg.method, umsg.call_id, umsg.cseq) == (tmsg.method, tmsg.call_id, tmsg.cseq)
    assert (urcv.proto, trcv.proto) == ("udp", "tcp")
    assert urcv.src_ip == trcv.src_ip == "127.0.0.1"
    assert trcv.src_port == tcp_port
    assert (urcv.dst_ip, urcv.dst_port) == (trcv.dst_ip, trcv.dst_port) == ("127.0.0.1", ends.port)


def test_messages_in_order_over_both(ends: Endpoints) -> None:
    msgs = [options(n, ends.port) for n in (1, 2, 3)]
    udp = via_udp(ends, *msgs, expect=3)
    tcp, _ = via_tcp(ends, b"".join(msgs), expect=3)  # pipelined on one connection
    assert [e[1].call_id for e in udp] == [e[1].call_id for e in tcp] == ["ev1@test", "ev2@test",
                                                                          "ev3@test"]


def test_a_parse_error_is_the_same_event_over_udp_and_tcp(ends: Endpoints) -> None:
    bad = b"THIS IS NOT SIP\r\nContent-Length: 0\r\n\r\n"
    udp = via_udp(ends, bad, expect=1)
    tcp, _ = via_tcp(ends, bad, expect=1)
    assert [e[0] for e in udp] == [e[0] for e in tcp] == ["bad"]
    (_, udata, urcv, uerr), (_, tdata, trcv, terr) = udp[0], tcp[0]
    assert udata == tdata == bad
    assert uerr.status == terr.status == 400 and uerr.reason == terr.reason
    assert (urcv.proto, trcv.proto) == ("udp", "tcp")


def test_a_good_message_before_a_bad_one_on_a_stream_is_delivered(ends: Endpoints) -> None:
    good, bad = options(7, ends.port, "TCP"), b"GARBAGE\r\nContent-Length: 0\r\n\r\n"
    udp = via_udp(ends, good, bad, expect=2)
    tcp, _ = via_tcp(ends, good + bad, expect=2)
    assert [e[0] for e in udp] == [e[0] for e in tcp] == ["msg", "bad"]
    assert udp[0][1].call_id == tcp[0][1].call_id == "ev7@test"
    assert udp[1][1] == tcp[1][1] == bad
    assert (udp[1][3].status, udp[1][3].reason) == (tcp[1][3].status, tcp[1][3].reason)


def test_keepalives_are_no_events(ends: Endpoints) -> None:
    send_udp(ends.port, b"\r\n\r\n", b"\r\n")
    conn = socket.create_connection(("127.0.0.1", ends.port), timeout=DEADLINE)
    try:
        conn.sendall(b"\r\n\r\n\r\n")
        assert ends.settle() == []
        conn.sendall(options(9, ends.port, "TCP"))  # the connection still frames messages
        assert [e[0] for e in ends.wait_events(1)] == ["msg"]
    finally:
        conn.close()
