"""TlsSession (kemi_core.transport.tlsio) on memory buffers, sans-IO: a server and a client
session talk through each other's outgoing bytes."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from kemi_core.transport.tlsio import TlsError, TlsSession
from kemi_tls.testing import make_pki


@pytest.fixture
def pair(tmp_path: Path) -> tuple[TlsSession, TlsSession]:
    pki = make_pki(tmp_path / "pki")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server, client = TlsSession(server_ctx, True), TlsSession(pki.client_context(), False)
    client.start()
    for _ in range(10):
        assert server.receive(client.outgoing()) == b""
        back = server.outgoing()
        if back:
            assert client.receive(back) == b""
    assert server.established and client.established
    return server, client


def test_records_read_in_one_feed_and_across_feeds(pair: tuple[TlsSession, TlsSession]) -> None:
    server, client = pair
    msgs = [b"INVITE sip:a@b SIP/2.0\r\n" + bytes([65 + i]) * (100 + 20000 * i) for i in range(3)]
    records = []
    for msg in msgs:
        records.append(client.send(msg))
    wire = b"".join(records)
    assert server.receive(wire) == b"".join(msgs)  # several records (one over 16 KB) at once
    record = client.send(msgs[0])
    assert client.outgoing() == b""  # send took the records
    assert server.receive(record[:7]) == b""  # a record's start: nothing to read yet
    assert server.receive(record[7:]) == msgs[0]
    assert not server.peer_closed


def test_close_notify_after_data(pair: tuple[TlsSession, TlsSession]) -> None:
    server, client = pair
    wire = client.send(b"bye") + client.close_notify()
    assert server.receive(wire) == b"bye"
    assert server.peer_closed


def test_plaintext_on_a_tls_port(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    with pytest.raises(TlsError):
        TlsSession(ctx, True).receive(b"OPTIONS sip:a SIP/2.0\r\n")


def _server_ctx(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    pki = make_pki(tmp_path / "pki")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    return server_ctx, pki.client_context()


def test_the_handshake_end_reads_nothing_more(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's feed that ends the handshake brings no data: no read is tried (each one
    that finds nothing raises SSLWantReadError, a costly exception)."""
    server_ctx, client_ctx = _server_ctx(tmp_path)
    server, client = TlsSession(server_ctx, True), TlsSession(client_ctx, False)
    reads: list[int] = []
    real_read = ssl.SSLObject.read

    def read(obj: ssl.SSLObject, size: int = 1024) -> bytes:
        reads.append(1)
        return real_read(obj, size)

    monkeypatch.setattr(ssl.SSLObject, "read", read)
    client.start()
    assert server.receive(client.outgoing()) == b""
    assert client.receive(server.outgoing()) == b""
    assert client.established
    assert server.receive(client.outgoing()) == b""  # the client's Finished
    assert server.established
    assert reads == []


def test_data_right_behind_the_handshake_end(tmp_path: Path) -> None:
    """The client's Finished and its first message in one segment: the message comes out."""
    server_ctx, client_ctx = _server_ctx(tmp_path)
    server, client = TlsSession(server_ctx, True), TlsSession(client_ctx, False)
    client.start()
    assert server.receive(client.outgoing()) == b""
    assert client.receive(server.outgoing()) == b""
    finished = client.outgoing()
    sent = client.send(b"OPTIONS sip:a SIP/2.0\r\n\r\n")
    assert server.receive(finished + sent) == b"OPTIONS sip:a SIP/2.0\r\n\r\n"
    assert server.established
