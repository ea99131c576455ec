"""StreamBuffer: Content-Length framing on a TCP byte stream."""

from __future__ import annotations

import pytest

from kemi_core.sip import ParseLimits, SipParseError, StreamBuffer


def test_whole_message(invite: bytes) -> None:
    sb = StreamBuffer()
    msgs = sb.feed(invite)
    assert len(msgs) == 1 and msgs[0].to_bytes() == invite
    assert sb.pending == 0


def test_byte_by_byte(invite: bytes) -> None:
    sb = StreamBuffer()
    got = []
    for i in range(len(invite)):
        got += sb.feed(invite[i : i + 1])
        if i < len(invite) - 1:
            assert got == []
    assert len(got) == 1 and got[0].body == invite.split(b"\r\n\r\n", 1)[1]


def test_several_in_one_read_with_keepalives(invite: bytes, register: bytes) -> None:
    data = b"\r\n\r\n" + invite + b"\r\n" + register + b"\r\n\r\n" + invite[:50]
    sb = StreamBuffer()
    msgs = sb.feed(data)
    assert [m.method for m in msgs] == ["INVITE", "REGISTER"]
    assert msgs[1].to_bytes() == register
    assert sb.pending == 50
    msgs = sb.feed(invite[50:])
    assert len(msgs) == 1 and msgs[0].to_bytes() == invite


def test_keepalive_only() -> None:
    sb = StreamBuffer()
    assert sb.feed(b"\r\n\r\n") == [] and sb.feed(b"\r\n") == []
    assert sb.pending == 0


def test_missing_content_length_is_error(register: bytes) -> None:
    data = register.replace(b"Content-Length: 0\r\n", b"")
    sb = StreamBuffer()
    with pytest.raises(SipParseError) as ei:
        sb.feed(data)
    assert ei.value.status == 400
    assert sb.failed
    with pytest.raises(SipParseError):
        sb.feed(register)


def test_missing_content_length_accepted_without_body(register: bytes) -> None:
    """tcp_accept_no_cl: the message ends at its empty line; what follows starts the next."""
    bare = register.replace(b"Content-Length: 0\r\n", b"")
    sb = StreamBuffer(ParseLimits(accept_no_cl=True))
    msgs = sb.feed(bare + b"hello" + register[:10])
    assert len(msgs) == 1 and msgs[0].body == b"" and not sb.failed
    assert msgs[0].to_bytes() == bare
    assert sb.pending == len(b"hello") + 10  # waiting for the rest of a next message


def test_good_message_before_bad_one(register: bytes) -> None:
    bad = register.replace(b"Content-Length: 0\r\n", b"")
    sb = StreamBuffer()
    msgs = sb.feed(register + bad)
    assert len(msgs) == 1
    assert sb.failed
    with pytest.raises(SipParseError):
        sb.feed(b"")


def test_oversized_head_without_end() -> None:
    sb = StreamBuffer(ParseLimits(max_message_size=1000))
    with pytest.raises(SipParseError) as ei:
        sb.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 2000)
    assert ei.value.status == 413


def test_content_length_too_large(register: bytes) -> None:
    sb = StreamBuffer(ParseLimits(max_message_size=1000))
    with pytest.raises(SipParseError) as ei:
        sb.feed(register.replace(b"Content-Length: 0", b"Content-Length: 5000"))
    assert ei.value.status == 413
