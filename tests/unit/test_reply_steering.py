"""The worker's rank in our branch (``forwarding.branch_rank``) and the kernel program that
steers replies by it (``transport.steer``), run on real SO_REUSEPORT sockets on 127.0.0.1 as
the main process binds them (``make_rank_sockets``): a reply naming rank r arrives on rank r's
socket whatever port it comes from; a request, a reply without a mark or naming a rank beyond
the group, a mark beyond the scanned window, a packet too short: the kernel's own hash."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Iterator

import pytest

from kemi_core.config.model import ListenAddr
from kemi_core.forwarding.branch_rank import MAIN_BRANCH, MAX_RANKS, branch_rank, rank_mark
from kemi_core.sip import ParseLimits, SipMsg, SipParseError, parse_datagram
from kemi_core.testing.wait import wait_until
from kemi_core.transport import steer
from kemi_core.transport.endpoints import WorkerEndpoints
from kemi_core.transport.handoff import Mailbox, decode
from kemi_core.transport.receiver import RecvInfo
from kemi_core.transport.sockets import RankSockets, make_rank_sockets

WORKERS = 4
SENDERS = 48  # source ports per case: the hash spreads them over the four sockets


def test_a_rank_mark_reads_back_as_its_rank() -> None:
    rng = random.Random(7)
    ranks = [1, 2, 26, 27, MAX_RANKS, *(rng.randrange(1, MAX_RANKS + 1) for _ in range(200))]
    for rank in ranks:
        mark = rank_mark(rank)
        assert len(mark) == 2 and mark.isalpha() and mark.isupper()
        tail = "".join(rng.choice("0123456789abcdef") for _ in range(rng.randrange(0, 20)))
        assert branch_rank(f"z9hG4bK{mark}{tail}.{rng.randrange(10)}") == rank
    assert len({rank_mark(r) for r in range(1, MAX_RANKS + 1)}) == MAX_RANKS


@pytest.mark.parametrize("branch", [
    None, "", "z9hG4bK", "z9hG4bKA", "z9hG4bKa1b2", "z9hG4bK0123abcd", "z9hG4bKds01",
    f"{MAIN_BRANCH}ds01",
    "z9hG4bKA1", "z9hG4bK[A", "1234AAbc", "z9hg4bKAA12", "z9hG4bK\u00c0A"])
def test_a_branch_without_a_mark_names_no_rank(branch: str | None) -> None:
    assert branch_rank(branch) is None


def test_no_mark_beyond_the_marks_ranks() -> None:
    assert rank_mark(0) == "" and rank_mark(MAX_RANKS + 1) == "" and rank_mark(-1) == ""


def test_tm_branches_start_with_the_workers_mark() -> None:
    from kemi_tm import idents

    idents.set_rank(3)
    try:
        ident, _ = idents.new_ident_and_tag()
        assert branch_rank(f"z9hG4bK{ident}.0") == 3
        assert branch_rank(idents.local_branch()) == 3
    finally:
        idents.set_rank(0)
    ident, _ = idents.new_ident_and_tag()
    assert branch_rank(f"z9hG4bK{ident}.0") is None


def test_the_program_fits_the_kernels_limits() -> None:
    for window in steer.WINDOWS:
        assert len(steer.program(window)) <= steer.MAX_INSNS


@pytest.fixture
def ranks() -> Iterator[dict[int, RankSockets]]:
    made = make_rank_sockets([("127.0.0.1", 0)], 1)  # a free port for the group ...
    port = next(iter(made[1].listen.values())).getsockname()[1]
    made[1].close()
    made = make_rank_sockets([("127.0.0.1", port)], WORKERS)  # ... bound as the server does
    yield made
    for sockets in made.values():
        sockets.close()


def arrivals(ranks: dict[int, RankSockets], datagrams: list[bytes]) -> list[int]:
    """Send each datagram from a port of its own; the rank whose socket got each, in order."""
    socks = {rank: next(iter(made.listen.values())) for rank, made in ranks.items()}
    port = socks[1].getsockname()[1]
    for data in datagrams:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.bind(("127.0.0.1", 0))
            sender.sendto(data, ("127.0.0.1", port))
    got: dict[bytes, int] = {}

    def read() -> bool:
        for rank, sock in socks.items():
            while True:
                try:
                    got[sock.recv(65535)] = rank
                except BlockingIOError:
                    break
        return len(got) == len(datagrams)

    wait_until(read, 5.0, f"{len(datagrams)} datagrams")
    return [got[data] for data in datagrams]


def reply(branch: str, n: int, before: str = "") -> bytes:
    return (f"SIP/2.0 200 OK\r\n{before}Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKAD{n}\r\nCall-ID: c{n}\r\n"
            f"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize("rank", range(1, WORKERS + 1))
def test_a_reply_reaches_the_socket_of_the_rank_its_branch_names(
        ranks: dict[int, RankSockets], rank: int) -> None:
    mark = rank_mark(rank)
    assert arrivals(ranks, [reply(f"z9hG4bK{mark}5f0e{n:x}.0", n)
                            for n in range(SENDERS)]) == [rank] * SENDERS


def test_the_top_via_may_come_after_other_headers(ranks: dict[int, RankSockets]) -> None:
    before = "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nX-Pad: " + "p" * 600 + "\r\n"
    assert arrivals(ranks, [reply(f"z9hG4bKAC{n}.0", n, before)
                            for n in range(SENDERS)]) == [3] * SENDERS


def spread(got: list[int]) -> bool:
    """Whether the kernel's hash spread the datagrams (not all on one socket)."""
    return len(set(got)) > 1


@pytest.mark.parametrize("case", ["request", "no mark", "beyond the group", "beyond the window",
                                  "short", "cookie cut short", "main process"])
def test_what_names_no_rank_of_the_group_goes_by_the_kernels_hash(
        ranks: dict[int, RankSockets], case: str) -> None:
    def make(n: int) -> bytes:
        if case == "request":
            return (f"OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKAB{n}"
                    "\r\n\r\n").encode()
        if case == "no mark":
            return reply(f"z9hG4bK0e1f{n}", n)
        if case == "main process":  # any worker takes it and hands it over (main_sip)
            return reply(f"{MAIN_BRANCH}ds{n:x}", n)
        if case == "beyond the group":
            return reply(f"z9hG4bK{rank_mark(WORKERS + 1)}{n}", n)
        if case == "beyond the window":
            return reply(f"z9hG4bKAB{n}", n, "X-Pad: " + "p" * 2000 + "\r\n")
        if case == "short":  # no room for the mark after the cookie: nothing read beyond
            return b"SIP/2.0 200 OK\r\nVia: x;branch=z9hG4bKA" + str(n).encode()
        return f"SIP/2.0 200 OK\r\nVia: x;branch=z9hGz9hG{n}\r\n\r\n".encode()

    assert spread(arrivals(ranks, [make(n) for n in range(SENDERS)]))


def test_without_the_program_replies_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEMI_REPLY_STEERING=off (as a kernel refusing the program): the hash spreads the same
    replies, and the workers hand them over (tests/e2e/test_reply_steering.py)."""
    monkeypatch.setenv("KEMI_REPLY_STEERING", "off")
    probe = make_rank_sockets([("127.0.0.1", 0)], 1)
    port = next(iter(probe[1].listen.values())).getsockname()[1]
    probe[1].close()
    bare = make_rank_sockets([("127.0.0.1", port)], WORKERS)
    try:
        assert spread(arrivals(bare, [reply(f"z9hG4bKAA{n}", n) for n in range(SENDERS)]))
    finally:
        for made in bare.values():
            made.close()


def test_a_worker_hands_a_reply_naming_another_rank_to_its_mailbox() -> None:
    """What the kernel did not steer: worker 1 hands a reply whose branch names rank 2 to
    worker 2's mailbox (``R``, with the RecvInfo it arrived with); one naming no rank, or
    rank 1, or a rank with no worker, stays (handled where it arrived)."""
    loop = asyncio.new_event_loop()
    tag = os.getpid() * 1000 + 41  # a fake main pid: mailbox names nobody else uses
    endpoints = WorkerEndpoints(loop, [ListenAddr("udp", "127.0.0.1", 5060)], _NoReceiver(),
                                ParseLimits(), True, rank=1, workers=3)
    endpoints.mailbox = Mailbox(tag, 1, loop)
    other = Mailbox(tag, 2, loop)
    rcv = RecvInfo("udp", "127.0.0.1", 5099, "127.0.0.1", 5060)
    try:
        kept = [endpoints.steer_reply(parse_datagram(reply(branch, n)), rcv)
                for n, branch in enumerate(("z9hG4bKAB1.0", "z9hG4bKAA1.0", "z9hG4bK0f1e",
                                            "z9hG4bKAC1.0"))]
        endpoints.mailbox.send_held()
        handed: list[bytes] = []

        def got() -> bool:
            other.drain(handed.append)
            return bool(handed)

        wait_until(got, 5.0, "the hand-over")
    finally:
        other.close()
        endpoints.mailbox.close()
        loop.close()
    assert kept == [True, False, False, False]  # rank 3 has no mailbox: handled here
    found = decode(handed[0])
    assert found is not None and found[0] == "R"
    assert found[1] == ["udp", "127.0.0.1", "5099", "127.0.0.1", "5060"]
    assert parse_datagram(found[2]).via.branch == "z9hG4bKAB1.0"


class _NoReceiver:
    def on_message(self, msg: SipMsg, rcv: RecvInfo) -> None:
        raise AssertionError("nothing is delivered here")

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None:
        raise AssertionError("nothing is delivered here")
