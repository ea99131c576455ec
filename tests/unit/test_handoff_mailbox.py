"""Workers' mailboxes (kemi_core.transport.handoff): a burst of hand-overs larger than a
worker's datagram queue (net.unix.max_dgram_qlen, 10 by default) all arrive, in order, once
the worker reads again; a worker that is not there is a clear False."""

from __future__ import annotations

import asyncio
import os

from kemi_core.transport.handoff import Mailbox

BURST = 200


def test_a_burst_waits_for_room_and_arrives_in_order() -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        tag = os.getpid() * 1000 + 7  # a fake main pid: names nobody else uses
        sender, receiver = Mailbox(tag, 1, loop), Mailbox(tag, 2, loop)
        got: list[bytes] = []
        try:
            # the receiver does not read yet: its queue fills, the rest must wait, not be lost
            assert all(sender.post(2, b"S%d" % n) for n in range(BURST))
            loop.add_reader(receiver.sock.fileno(), receiver.drain, got.append)
            deadline = loop.time() + 10
            while len(got) < BURST and loop.time() < deadline:
                await asyncio.sleep(0.01)
            loop.remove_reader(receiver.sock.fileno())
        finally:
            sender.close()
            receiver.close()
        return got

    got = asyncio.run(run())
    assert got == [b"S%d" % n for n in range(BURST)]


def test_posting_to_a_worker_that_is_not_there_fails() -> None:
    async def run() -> bool:
        box = Mailbox(os.getpid() * 1000 + 8, 1, asyncio.get_running_loop())
        try:
            return box.post(5, b"Sx")
        finally:
            box.close()

    assert asyncio.run(run()) is False
