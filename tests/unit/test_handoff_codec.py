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
