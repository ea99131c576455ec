"""The hand-over packets between workers: what encode_* write, decode reads back."""

from __future__ import annotations

from kemi_core.transport.handoff import decode, encode_failed, encode_received, encode_send
from kemi_core.transport.receiver import RecvInfo

DATA = b"INVITE sip:b@c SIP/2.0\r\nX: a\0b\r\n\r\n"  # a NUL in the data stays in the data


def test_send_round_trip() -> None:
    assert decode(encode_send(2, "wss", "10.0.0.1", 5061, DATA)) == (
        "S", ["2", "wss", "10.0.0.1", "5061"], DATA)


def test_received_round_trip() -> None:
    rcv = RecvInfo("tls", "::1", 40000, "127.0.0.1", 5061)
    assert decode(encode_received(rcv, DATA)) == (
        "R", ["tls", "::1", "40000", "127.0.0.1", "5061"], DATA)


def test_failed_round_trip_with_empty_data_and_utf8_field() -> None:
    assert decode(encode_failed("tcp", "hôte", 5060, b"")) == ("F", ["tcp", "hôte", "5060"], b"")


def test_malformed_packets() -> None:
    assert decode(b"") is None
    assert decode(b"X1\0tcp\0h\0" + DATA) is None  # no such kind
    assert decode(b"S1\0tcp\0h") is None  # fields missing


def test_replies_handed_over_from_one_connection_share_its_recvinfo() -> None:
    """The worker holding a transaction gets its replies from the worker holding the
    connection (R): each arrives with that connection's RecvInfo, one object for all."""
    import asyncio

    from kemi_core.sip import ParseLimits
    from kemi_core.testing.receivers import EventRecorder
    from kemi_core.transport.endpoints import WorkerEndpoints

    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\n"
             b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: c1\r\n"
             b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    loop = asyncio.new_event_loop()
    loop.close()  # never started: the hand-over is handled as the mailbox would hand it
    rec = EventRecorder()
    ep = WorkerEndpoints(loop, [], rec, ParseLimits(), shared=False)
    callee = RecvInfo("tls", "127.0.0.1", 40000, "127.0.0.1", 5061)
    other = RecvInfo("tls", "127.0.0.1", 40001, "127.0.0.1", 5061)
    for rcv in (callee, callee, other):
        ep._handed_over(encode_received(rcv, reply))
    got = [event[2] for event in rec.events]
    assert [event[0] for event in rec.events] == ["msg"] * 3
    assert got == [callee, callee, other]
    assert got[0] is got[1] and got[2] is not got[0]
