"""TransactionTable: matching, one timer index for all, removal of finished transactions."""

from __future__ import annotations

import gc
import random

import pytest

from kemi_tm.actions import Dest, NeedsDecision, Send
from kemi_tm.proxy import ProxyTransaction
from kemi_tm.table import TransactionTable

CALLER = Dest("udp", "10.0.0.1", 5060)
CALLEE = Dest("udp", "10.0.0.10", 5060)
ME = "192.0.2.1:5060"


def make(sip, table, n: int, method: str = "INVITE", transport: str = "UDP", now: float = 0.0):
    req = sip.request(method, branch=f"z9hG4bKc{n}", call_id=f"c{n}", transport=transport)
    dest = Dest(transport.lower(), "10.0.0.1", 5060)
    tx = ProxyTransaction(req, dest, ident=f"t{n}")
    table.insert(tx)
    tx.start(now)
    return tx


def branch(tx, dest, now: float) -> bytes:
    """Add a branch to ``dest``; the request it sends (sending it is the caller's part)."""
    index = tx.add_branch(tx.request, dest, now, sent_by=ME)
    return tx.branches[index].client.data


def test_lookups(sip):
    table = TransactionTable()
    tx = make(sip, table, 1)
    with pytest.raises(KeyError):
        table.insert(ProxyTransaction(sip.request("INVITE", branch="z9hG4bKc1", call_id="c1"),
                                      CALLER, ident="other"))
    same_ident = ProxyTransaction(sip.request("INVITE", branch="z9hG4bKc2", call_id="c2"),
                                  CALLER, ident=tx.ident)
    with pytest.raises(KeyError):
        table.insert(same_ident)
    assert table.lookup_request(sip.request("INVITE", branch="z9hG4bKc2", call_id="c2")) is None
    assert len(table) == 1 and tx in table
    assert table.lookup_request(sip.request("INVITE", branch="z9hG4bKc1", call_id="c1")) is tx
    assert table.lookup_request(sip.request("ACK", branch="z9hG4bKc1", call_id="c1", to_tag="x")) is tx
    assert table.lookup_request(sip.request("INVITE", branch="z9hG4bKzz", call_id="c1")) is None
    assert table.lookup_request(sip.request("CANCEL", branch="z9hG4bKc1", call_id="c1")) is None
    assert table.lookup_cancel_target(sip.request("CANCEL", branch="z9hG4bKc1", call_id="c1")) is tx
    reply = sip.reply(branch(tx, CALLEE, 0.0), 180, "Ringing")
    assert table.lookup_reply(reply) == (tx, 0)
    assert table.lookup_reply(sip.reply(sip.request("INVITE", branch="z9hG4bKt9.0"), 180)) \
        is None
    assert table.lookup_reply(sip.reply(sip.request("INVITE", branch="nocookie"), 180)) is None


def test_heap_fires_only_due_entries(sip):
    table = TransactionTable()
    a = make(sip, table, 1, method="OPTIONS")
    b = make(sip, table, 2, method="OPTIONS", now=10.0)
    a.add_branch(a.request, CALLEE, 0.0, sent_by=ME)
    b.add_branch(b.request, CALLEE, 10.0, sent_by=ME)
    assert table.next_timer() == 0.5
    assert table.on_timer(0.5) == [a]  # only a's Timer E was due
    assert [type(x) for x in a.sink.take()] == [Send] and b.sink.take() == []
    assert table.next_timer() == 1.5  # a re-armed, b at 10.5
    assert table.on_timer(1.0) == []


def test_a_partly_due_tick_fires_only_what_is_due(sip):
    # Timer E of a at 0.501 and of b at 0.51: both in the tick ending at 33/64 s
    table = TransactionTable()
    a = make(sip, table, 1, method="OPTIONS", now=0.001)
    b = make(sip, table, 2, method="OPTIONS", now=0.01)
    a.add_branch(a.request, CALLEE, 0.001, sent_by=ME)
    b.add_branch(b.request, CALLEE, 0.01, sent_by=ME)
    assert table.next_timer() == pytest.approx(0.501)
    assert table.on_timer(0.505) == [a]
    assert table.next_timer() == pytest.approx(0.51)
    assert table.on_timer(0.51) == [b]
    assert table.next_timer() == pytest.approx(1.505)  # a's E again: 1 s after it fired


def test_due_entries_fire_in_deadline_order(sip):
    table = TransactionTable()
    txs = [make(sip, table, n, method="OPTIONS", now=0.3 - n * 0.05) for n in range(1, 5)]
    for tx, n in zip(txs, range(1, 5), strict=True):
        tx.add_branch(tx.request, CALLEE, 0.3 - n * 0.05, sent_by=ME)
    assert table.on_timer(2.0) == txs[::-1]  # the earliest deadline first


def test_finished_transactions_leave_after_their_wait(sip):
    table = TransactionTable()
    tx = make(sip, table, 1)
    data = branch(tx, CALLEE, 0.0)
    hit = table.lookup_reply(sip.reply(data, 486, "Busy"))
    assert hit is not None
    tx.on_response(hit[1], sip.reply(data, 486, "Busy"), 1.0)
    assert any(isinstance(a, NeedsDecision) for a in tx.sink.take())
    tx.relay_best(1.0)
    tx.on_request(sip.request("ACK", branch="z9hG4bKc1", to_tag="x"), 1.2)
    for _ in range(100):
        at = table.next_timer()
        if at is None:
            break
        table.on_timer(at)
    assert len(table) == 0 and tx not in table
    assert at is None


def test_tcp_non_invite_removed_at_once(sip):
    table = TransactionTable()
    tx = make(sip, table, 1, method="OPTIONS", transport="TCP")
    tcp = Dest("tcp", "10.0.0.10", 5060)
    tx.on_response(0, sip.reply(branch(tx, tcp, 0.0), 200, "OK"), 0.1)
    assert len(table) == 0  # server J = 0 and client K = 0 on reliable transports


def live_transactions() -> int:
    return sum(isinstance(o, ProxyTransaction) for o in gc.get_objects())


@pytest.mark.parametrize("late", [0.0, 0.07])
def test_soak_every_transaction_is_removed(sip, late):
    """Many calls with random outcomes on a fake clock: the table must end empty and nothing
    may keep a finished transaction alive. ``late``: the timer fires that much after the
    earliest deadline (a busy worker), so whole buckets are due at once, not only a part."""
    gc.collect()
    alive_before = live_transactions()
    soak(sip, late)
    gc.collect()
    assert live_transactions() == alive_before  # no finished transaction kept alive


@pytest.mark.parametrize("late", [0.0, 0.07])
def test_ending_all_machines_at_once_is_the_timer_dispatch(sip, late, monkeypatch):
    """ProxyTransaction.on_timer ends every machine at once when each has only its last wait
    left: the same as firing each machine's timer (the general path)."""
    fast = soak(sip, late)
    monkeypatch.setattr(ProxyTransaction, "ends_now", lambda self, now: False)
    assert soak(sip, late) == fast


def soak(sip, late: float) -> list[tuple[float, str, int, bool]]:
    """The random calls of the soak test; what happened: (time, ident, final status sent,
    removed) per table.on_timer entry run, then per final."""
    rng = random.Random(3261)
    table = TransactionTable()
    trace: list[tuple[float, str, int, bool]] = []
    finals: dict[str, int] = {}
    pending: list[tuple[float, str, ProxyTransaction, bytes]] = []  # scheduled UAS answers
    now = 0.0

    def handle(tx, t):
        for a in tx.sink.take():  # what the input just made ``tx`` do
            if isinstance(a, NeedsDecision):
                tx.relay_best(t)
                handle(tx, t)
            elif isinstance(a, Send) and a.dest == CALLER:
                reply = sip.parse(a.data)
                if reply.status >= 200:
                    finals.setdefault(tx.ident, reply.status)
                    if reply.status >= 300:  # the caller ACKs the negative final
                        ack = sip.request("ACK", branch=tx.request.via.branch,
                                          call_id=tx.request.call_id, to_tag="x")
                        pending.append((t + 0.05, "ack", tx, ack.to_bytes()))

    for n in range(300):
        now += 0.01
        method = "INVITE" if n % 3 else "OPTIONS"
        tx = make(sip, table, n, method=method, now=now)
        for _ in range(rng.choice((1, 1, 2))):
            data = branch(tx, CALLEE, now)
            fate = rng.choice(("200", "486", "ring200", "ringcancel", "silent", "ringtimeout"))
            if method != "INVITE" and fate.startswith("ring"):
                fate = "200"
            pending.append((now + rng.uniform(0.01, 2.0), fate, tx, data))

    for _ in range(100_000):
        pending.sort(key=lambda p: p[0])
        nxt = table.next_timer()
        if pending and (nxt is None or pending[0][0] <= nxt):
            t, fate, tx, data = pending.pop(0)
            now = max(now, t)
            if tx not in table:
                continue
            if fate == "ack":
                tx.on_request(sip.parse(data), now)
                handle(tx, now)
                continue
            if fate == "silent":
                continue
            if fate in ("200", "486"):
                reply = sip.reply(data, int(fate), "R")
            elif fate == "cancel":  # the caller CANCELs; the callee answers 487
                tx.cancel_all(now)
                handle(tx, now)
                reply = sip.reply(data, 487, "Request Terminated")
            else:
                reply = sip.reply(data, 180, "Ringing")
                later = {"ring200": "200", "ringcancel": "cancel", "ringtimeout": "silent"}[fate]
                pending.append((now + 1.0, later, tx, data))
            hit = table.lookup_reply(reply)
            if hit is not None:
                tx.on_response(hit[1], reply, now)
                handle(tx, now)
        elif nxt is not None:
            now = max(now, nxt + late)
            for tx in table.on_timer(now):
                handle(tx, now)
                trace.append((now, tx.ident, tx.final_status, tx not in table))
        else:
            break
    assert len(table) == 0
    assert len(finals) == 300  # every caller got a final answer
    assert {200, 408, 486, 487} <= set(finals.values())
    return trace + [(0.0, ident, status, True) for ident, status in sorted(finals.items())]


def test_inputs_mark_and_a_flush_refiles_once(sip):
    """An input only marks its entry (the owner hears it once per batch); the next
    next_timer/on_timer files each marked entry once, under its deadline as it is then."""
    table = TransactionTable()
    heard: list[str] = []
    table.on_refile = lambda: heard.append("refile")
    table.on_deadline = lambda at: heard.append(f"deadline {at}")
    tx = make(sip, table, 1)
    data = branch(tx, CALLEE, 0.0)  # Timer A at 0.5, B at 30
    tx.on_response(0, sip.reply(data, 180, "Ringing"), 0.1)  # fr_inv at 120.1
    tx.on_response(0, sip.reply(data, 200, "OK"), 0.2)  # L and M at 5.2
    assert heard == ["refile"] and tx.filed_at is None and tx.refile
    assert table.next_timer() == 5.2  # the deadline after the last input, filed once
    assert heard == ["refile", "deadline 5.2"] and not tx.refile
    assert table.on_timer(5.2) == [tx] and len(table) == 0


def test_a_marked_entry_fires_no_later_than_its_new_deadline(sip):
    # filed at 120.1 (fr_inv), then an input moves its deadline to 5.2: on_timer at 5.2
    # flushes before it collects what is due
    table = TransactionTable()
    tx = make(sip, table, 1)
    data = branch(tx, CALLEE, 0.0)
    tx.on_response(0, sip.reply(data, 180, "Ringing"), 0.1)
    assert table.next_timer() == pytest.approx(120.1)
    tx.on_response(0, sip.reply(data, 200, "OK"), 0.2)
    assert tx.filed_at == pytest.approx(120.1) and tx.refile
    assert table.on_timer(5.2) == [tx] and len(table) == 0


def test_an_entry_removed_while_marked_is_not_filed(sip):
    table = TransactionTable()
    tx = make(sip, table, 1, method="OPTIONS")
    branch(tx, CALLEE, 0.0)
    assert tx.refile
    assert table.remove(tx)
    assert table.next_timer() is None and not table._buckets and not tx.refile


def test_entries_run_by_on_timer_are_filed_without_waking_the_owner(sip):
    table = TransactionTable()
    heard: list[str] = []
    table.on_refile = lambda: heard.append("refile")
    tx = make(sip, table, 1, method="OPTIONS")
    branch(tx, CALLEE, 0.0)  # Timer E at 0.5
    assert heard == ["refile"] and table.next_timer() == 0.5
    assert table.on_timer(0.5) == [tx]  # E fired (a retransmission): E again at 1.5
    assert heard == ["refile"] and not tx.refile and tx.filed_at == 1.5
