"""Next-hop resolution: never blocks the loop, caches answers for a bounded time, and a name that
failed is asked again once its negative entry expires (failure, then recovery)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.forwarding import PENDING, Resolver, send_to
from kemi_core.forwarding.resolver import HostsFile
from kemi_core.runtime.clock import VirtualClock
from kemi_core.runtime.core import Core
from kemi_core.testing.capture import CaptureTransport


class Lookups:
    """The system resolver's part, answered by the test: each lookup waits for ``answer``."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.pending: dict[str, list] = {}

    def __call__(self, name: str, done) -> None:  # type: ignore[no-untyped-def]
        self.asked.append(name)
        self.pending.setdefault(name, []).append(done)

    def answer(self, name: str, ip: str | None) -> None:
        for done in self.pending.pop(name):
            done(ip)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def test_a_failed_name_is_asked_again_after_the_negative_ttl(clock: VirtualClock) -> None:
    lookups = Lookups()
    res = Resolver(clock.now, lookups, ttl=300, negative_ttl=10)
    got: list[str | None] = []
    assert res.resolve("proxy.example", got.append) is PENDING
    lookups.answer("proxy.example", None)  # the DNS server is down
    assert got == [None]
    # within the negative TTL: known to fail, no new lookup
    assert res.resolve("proxy.example", got.append) is None
    clock.advance(9)
    assert res.resolve("Proxy.Example", got.append) is None
    assert lookups.asked == ["proxy.example"]
    # past it: asked again, and this time it answers (recovery)
    clock.advance(2)
    assert res.resolve("proxy.example", got.append) is PENDING
    lookups.answer("proxy.example", "192.0.2.7")
    assert got == [None, "192.0.2.7"]
    assert res.resolve("proxy.example", got.append) == "192.0.2.7"
    assert res.known("proxy.example") == "192.0.2.7"
    assert lookups.asked == ["proxy.example", "proxy.example"]


def test_a_found_address_expires_after_the_ttl(clock: VirtualClock) -> None:
    lookups = Lookups()
    res = Resolver(clock.now, lookups, ttl=300, negative_ttl=10)
    res.resolve("a.example", lambda ip: None)
    lookups.answer("a.example", "192.0.2.1")
    clock.advance(299)
    assert res.known("a.example") == "192.0.2.1"
    clock.advance(2)
    assert res.known("a.example") is None  # stale: known() never starts a lookup
    assert lookups.asked == ["a.example"]
    assert res.resolve("a.example") is None  # without a callback: starts it, answers None now
    assert lookups.asked == ["a.example", "a.example"]


def test_waiters_for_one_name_share_one_lookup(clock: VirtualClock) -> None:
    lookups = Lookups()
    res = Resolver(clock.now, lookups)
    got: list[tuple[int, str | None]] = []
    for n in range(3):
        assert res.resolve("b.example", lambda ip, n=n: got.append((n, ip))) is PENDING
    assert lookups.asked == ["b.example"]
    lookups.answer("b.example", "192.0.2.2")
    assert got == [(0, "192.0.2.2"), (1, "192.0.2.2"), (2, "192.0.2.2")]


def test_literals_resolve_at_once_without_lookup(clock: VirtualClock) -> None:
    lookups = Lookups()
    res = Resolver(clock.now, lookups)
    assert res.resolve("127.0.0.1", lambda ip: None) == "127.0.0.1"
    assert res.resolve("[::1]", lambda ip: None) == "::1"
    assert lookups.asked == []


def test_the_system_lookup_runs_off_the_event_loop(tmp_path: Path) -> None:
    """The real path: the loop's getaddrinfo in a thread (localhost comes from the hosts
    file, no network); the loop keeps turning while the answer is on its way."""
    res = Resolver()
    res.hosts = HostsFile(str(tmp_path / "no-hosts"))  # not answered on the spot
    loop = asyncio.new_event_loop()
    res.loop = loop
    got: list[str | None] = []
    turns = 0

    async def main() -> None:
        nonlocal turns
        assert res.resolve("localhost", got.append) is PENDING
        end = loop.time() + 10
        while not got and loop.time() < end:
            turns += 1
            await asyncio.sleep(0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert got and got[0] in ("127.0.0.1", "::1")
    assert turns > 0  # the loop ran other work meanwhile
    assert res.known("localhost") == got[0]


def test_hosts_file_names_are_answered_on_the_spot(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost my-proxy # a comment\n")
    res = Resolver()
    res.hosts = HostsFile(str(hosts))
    res.loop = asyncio.new_event_loop()
    try:
        assert res.resolve("localhost", lambda ip: None) in ("127.0.0.1", "::1")
    finally:
        res.loop.close()
    assert HostsFile(str(hosts)).has("my-proxy")


def test_send_to_a_name_waits_for_its_answer(clock: VirtualClock) -> None:
    """What the forwarding code does with a name: nothing sent until it resolves; a name
    that fails sends nothing, and once it resolves again the message goes out."""
    core = Core(CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)]), clock)
    lookups = Lookups()
    core.resolver = Resolver(clock.now, lookups, negative_ttl=10)
    wire = CaptureTransport()
    core.attach_transport(wire)
    assert send_to(core, "udp", "next.example", 5080, b"one") is True
    assert wire.sent == []
    lookups.answer("next.example", None)
    assert wire.sent == []
    assert send_to(core, "udp", "next.example", 5080, b"two") is False  # cached failure
    clock.advance(11)
    assert send_to(core, "udp", "next.example", 5080, b"three") is True
    lookups.answer("next.example", "127.0.0.1")
    assert [(s.host, s.port, s.data) for s in wire.sent] == [("127.0.0.1", 5080, b"three")]
    assert send_to(core, "udp", "next.example", 5080, b"four") is True
    assert wire.sent[-1].data == b"four"


def test_a_stateless_forward_to_a_name_goes_out_when_it_resolves(clock: VirtualClock) -> None:
    """KSR.forward to a name: 1 at once (on its way), the request sent with our Via when the
    name answers; a name that does not resolve sends nothing and counts an error."""
    from kemi_core.forwarding import forward_request
    from kemi_core.runtime.context import RecvInfo
    from kemi_core.sip import parse_datagram
    from kemi_core.stats import CoreStats

    core = Core(CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)]), clock)
    lookups = Lookups()
    core.resolver = Resolver(clock.now, lookups, negative_ttl=10)
    core.stats = CoreStats(core)
    wire = CaptureTransport()
    core.attach_transport(wire)
    request = (b"ACK sip:b@next.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa"
               b"\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\n"
               b"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    rcv = RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060)
    ctx = core.new_context(parse_datagram(request), rcv)
    assert forward_request(ctx, "sip:next.example:5080") == 1
    assert wire.sent == []
    lookups.answer("next.example", "127.0.0.1")
    [sent] = wire.sent
    assert (sent.host, sent.port) == ("127.0.0.1", 5080)
    assert sent.data.startswith(b"ACK sip:b@next.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:")
    assert b"\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa\r\n" in sent.data
    assert core.stats.fwd_requests.value == 1
    ctx = core.new_context(parse_datagram(request), rcv)
    assert forward_request(ctx, "sip:other.example") == 1
    lookups.answer("other.example", None)
    assert len(wire.sent) == 1 and core.stats.err_requests.value == 1
