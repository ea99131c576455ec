"""A read-ahead UdpSocket's compiled batch paths (Linux): an event's datagrams read with recvmmsg
(``_fast.udp_recv``) and the held sends sent with sendmmsg (``_fast.udp_send``) give what the
Python paths give (one recvfrom_into / sendto each): the same datagrams, sources, order, errors.
Real sockets on 127.0.0.1 (and ::1 when there is one)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Iterator

import pytest

from kemi_core.sip import ParseLimits
from kemi_core.testing.receivers import EventRecorder
from kemi_core.transport import outbox, udp
from kemi_core.transport.outbox import Outbox
from kemi_core.transport.receiver import RecvInfo
from kemi_core.transport.sockets import bind_udp

pytestmark = pytest.mark.skipif(udp.udp_recv is None or outbox.udp_send is None,
                                reason="compiled UDP batch paths not built (or not Linux)")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _socket(loop: asyncio.AbstractEventLoop, box: Outbox, host: str = "127.0.0.1") -> udp.UdpSocket:
    sock = bind_udp(host, 0, reuse_port=False)
    return udp.UdpSocket(loop, sock, EventRecorder(), ParseLimits(), host,
                         sock.getsockname()[1], box)


def _peer(host: str = "127.0.0.1") -> socket.socket:
    peer = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    peer.settimeout(2.0)
    return peer


def _read_both(us: udp.UdpSocket, peers: list[socket.socket], datagrams: list[bytes],
               monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[bytes, RecvInfo]], ...]:
    """What _read_all returns for the same datagrams, compiled then in Python."""
    results: list[list[tuple[bytes, RecvInfo]]] = []
    for compiled in (True, False):
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(udp, "udp_recv", None)
            us.sources.clear()
            for n, data in enumerate(datagrams):
                peers[n % len(peers)].sendto(data, (us.local_ip, us.local_port))
            got: list[tuple[bytes, RecvInfo]] = []
            while len(got) < len(datagrams):
                batch = us._read_all()
                assert 0 < len(batch) <= udp.DRAIN_MAX
                got.extend(batch)
            assert us._read_all() == []
            results.append(got)
    return tuple(results)


def test_recv_batches_give_the_python_reads(loop: asyncio.AbstractEventLoop,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp, "DRAIN_MAX", 20)  # more than one recvmmsg (16) per event
    us = _socket(loop, Outbox())
    peers = [_peer(), _peer()]
    datagrams = [b"d%d" % n if n != 7 else b"" for n in range(45)] + [b"x" * 65_000]
    compiled, python = _read_both(us, peers, datagrams, monkeypatch)
    assert compiled == python
    assert [d for d, _ in compiled] == datagrams
    assert compiled[1][1] == RecvInfo("udp", "127.0.0.1", peers[1].getsockname()[1],
                                      "127.0.0.1", us.local_port)
    us.close()


def test_recv_batches_name_ipv6_sources_as_the_socket_module(
        loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        us = _socket(loop, Outbox(), "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    peer = _peer("::1")
    compiled, python = _read_both(us, [peer], [b"a", b"b"], monkeypatch)
    assert compiled == python
    assert compiled[0][1].src_ip == "::1"
    assert compiled[0][1].src_port == peer.getsockname()[1]
    us.close()


def _received(peer: socket.socket, count: int) -> list[tuple[bytes, int]]:
    return [(data, addr[1]) for data, addr in (peer.recvfrom(100) for _ in range(count))]


def test_held_sends_go_out_as_the_python_sends(loop: asyncio.AbstractEventLoop,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kemi.transport")
    runs: list[list[tuple[bytes, str]]] = []
    for compiled in (True, False):
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(outbox, "udp_send", None)
            box = Outbox()
            a, b = _socket(loop, box), _socket(loop, box)
            peer = _peer()
            to = peer.getsockname()
            assert box.hold()
            a.sendto(b"1", to)
            a.sendto(b"2", to)
            b.sendto(b"3", to)  # another socket: a new run
            a.sendto(b"4", ("localhost", to[1]))  # not a numeric host: sent by sock.sendto
            a.sendto(b"5", ("127.0.0.1", 0))  # refused by the kernel (port 0): not sent
            a.sendto(b"6", to)
            assert _readable(peer) is False
            caplog.clear()
            box.release()
            sent = _received(peer, 5)
            assert [r.getMessage().split(": ")[0] for r in caplog.records] == [
                f"udp send from 127.0.0.1:{a.local_port} to ('127.0.0.1', 0)"]
            assert _readable(peer) is False
            runs.append([(data, {a.local_port: "a", b.local_port: "b"}[port])
                         for data, port in sent])
            a.close()
            b.close()
            peer.close()
    assert runs[0] == runs[1] == [(b"1", "a"), (b"2", "a"), (b"3", "b"), (b"4", "a"), (b"6", "a")]


def test_a_socket_with_sends_queued_keeps_its_held_sends_behind_them(
        loop: asyncio.AbstractEventLoop) -> None:
    box = Outbox()
    a = _socket(loop, box)
    peer = _peer()
    to = peer.getsockname()
    a._queue(b"q", to)  # as when the kernel's send buffer was full
    assert a.send_held not in box.direct
    assert box.hold()
    a.sendto(b"h1", to)
    a.sendto(b"h2", to)
    box.release()
    assert _readable(peer) is False
    assert [d for d, _ in a.pending] == [b"q", b"h1", b"h2"]
    a._write_ready()  # the socket is writable: the queue goes out, then sends are direct again
    assert [d for d, _ in _received(peer, 3)] == [b"q", b"h1", b"h2"]
    assert box.direct[a.send_held] == (a.fd, socket.AF_INET)
    a.close()
    assert a.send_held not in box.direct
    peer.close()


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_recv_batches_are_copied_out_before_a_source_is_made(
        loop: asyncio.AbstractEventLoop) -> None:
    # make() runs Python, where another thread may read another socket into the same module
    # buffers: here make() itself reads one (as such a thread would)
    a, b = _socket(loop, Outbox()), _socket(loop, Outbox())
    pa, pb = _peer(), _peer()
    for n in range(3):
        pa.sendto(b"a%d" % n, (a.local_ip, a.local_port))
        pb.sendto(b"b%d" % n, (b.local_ip, b.local_port))
    read_meanwhile: list[tuple[bytes, RecvInfo]] = []

    def make(raw: bytes) -> RecvInfo:
        if not read_meanwhile:
            read_meanwhile.extend(b._read_all())
        return a._source_raw(raw)

    assert udp.udp_recv is not None
    got, error = udp.udp_recv(a.fd, 64, a.sources, make)
    assert error == 0
    assert [(d, r.src_port) for d, r in got] == [(b"a%d" % n, pa.getsockname()[1])
                                                 for n in range(3)]
    assert [(d, r.src_port) for d, r in read_meanwhile] == [(b"b%d" % n, pb.getsockname()[1])
                                                            for n in range(3)]
    a.close()
    b.close()
