"""Memory: every finished transaction leaves the table (100,000 of them, fake clock, no I/O)."""

from __future__ import annotations

import gc

import pytest

from kemi_core.sip import build_reply, parse_datagram
from kemi_tm.actions import Dest
from kemi_tm.proxy import ProxyTransaction
from kemi_tm.table import TransactionTable

CALLER = Dest("udp", "127.0.0.1", 5070, ("127.0.0.1", 5060))
CALLEE = Dest("udp", "127.0.0.1", 5080)

TEMPLATE = ("{m} sip:bob@127.0.0.1 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n}\r\n"
            "From: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:bob@127.0.0.1>\r\n"
            "Call-ID: soak-{n}\r\nCSeq: 1 {m}\r\nContent-Length: 0\r\n\r\n")


def run_calls(table: TransactionTable, start: int, count: int, clock: list[float]) -> None:
    for n in range(start, start + count):
        method = "INVITE" if n % 2 else "OPTIONS"
        req = parse_datagram(TEMPLATE.format(m=method, n=n).encode())
        tx = ProxyTransaction(req, CALLER)
        table.insert(tx)
        tx.start(clock[0])
        index = tx.add_branch(req, CALLEE, clock[0], sent_by="127.0.0.1:5060")
        sent = parse_datagram(tx.branches[index].client.data)
        reply = parse_datagram(build_reply(sent, 200, "OK", to_tag="b"))
        found = table.lookup_reply(reply)
        assert found is not None
        found[0].on_response(found[1], reply, clock[0])
        if n % 100 == 0:  # time goes on: the lingering (wait) timers end
            clock[0] += 0.5
            table.on_timer(clock[0])


@pytest.mark.soak
def test_100k_transactions_are_all_freed() -> None:
    table = TransactionTable()
    clock = [0.0]
    run_calls(table, 0, 2_000, clock)  # warm up caches before measuring
    clock[0] += 60.0
    table.on_timer(clock[0])
    assert len(table) == 0
    gc.collect()
    before = len(gc.get_objects())
    run_calls(table, 2_000, 100_000, clock)
    assert len(table) > 0  # some are still lingering in their wait timers
    clock[0] += 60.0
    table.on_timer(clock[0])
    assert len(table) == 0
    assert table.next_timer() is None
    assert not table._buckets and not table._ticks  # no timer entry left behind
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 1_000, f"{grown} more live objects after 100,000 transactions"
