"""StreamBuffer: Content-Length framing on a TCP byte stream."""

from __future__ import annotations

import pytest

from kemi_core.sip import ParseLimits, SipMsg, SipParseError, StreamBuffer
from kemi_core.sip import stream as stream_module


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


def _state(msg: SipMsg) -> tuple[object, ...]:
    return (msg._lines, msg._names, msg._body, msg._buf, msg.is_request, msg.status,
            msg.reason, str(msg.via), msg.cseq.method)


@pytest.mark.parametrize("split", [None, 1, 7, 200])
def test_compiled_pass_gives_the_python_paths_messages(invite: bytes, register: bytes,
                                                       split: int | None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole messages at the buffer's start go through _fast.c's scan_message (as datagrams
    do); what comes out is what the Python framing gives, however the reads split."""
    reply = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;"
             b"tag=1\r\nTo: <sip:b@c>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
             b"Content-Length: 4\r\n\r\nabcd")
    data = invite + b"\r\n" + reply + register + reply[:60]

    def feed_all() -> tuple[list[SipMsg], int]:
        sb = StreamBuffer()
        step = split or len(data)
        got: list[SipMsg] = []
        for i in range(0, len(data), step):
            got += sb.feed(data[i : i + step])
        return got, sb.pending

    compiled, pending = feed_all()
    monkeypatch.setattr(stream_module, "scan_message", None)
    python, python_pending = feed_all()
    assert [_state(m) for m in compiled] == [_state(m) for m in python]
    assert [m.status or m.method for m in compiled] == ["INVITE", 200, "REGISTER"]
    assert pending == python_pending == 60


def test_whole_messages_in_one_read_skip_the_buffer(invite: bytes, register: bytes,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of whole messages back to back (several come in one read when they come fast)
    is framed by the compiled pass alone: nothing goes through the buffer's path; a partial
    message behind them does, and completes as usual."""
    data = invite + register + invite
    sb = StreamBuffer()

    def no_drain(self: StreamBuffer, out: list[SipMsg]) -> None:
        pytest.fail("the buffer's path ran")

    monkeypatch.setattr(StreamBuffer, "_drain", no_drain)
    msgs = sb.feed(data)
    assert [m.to_bytes() for m in msgs] == [invite, register, invite]
    assert sb.pending == 0
    monkeypatch.undo()
    sb = StreamBuffer()
    msgs = sb.feed(invite + register[:40])
    assert [m.to_bytes() for m in msgs] == [invite] and sb.pending == 40
    assert [m.to_bytes() for m in sb.feed(register[40:])] == [register]
