"""kemi_core.sip.Sdp: reading addresses and ports, rewriting them, every other byte kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi_core.sip import Sdp, SdpError, parse_datagram

BODY = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 10.0.0.5\r\ns=-\r\n"
        b"c=IN IP4 10.0.0.5\r\nt=0 0\r\n"
        b"m=audio 49170 RTP/AVP 0 8 101\r\nc=IN IP4 10.0.0.6\r\na=rtcp:49171\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"m=video 51372/2 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n")


def test_untouched_body_is_kept_byte_for_byte() -> None:
    assert Sdp.parse(BODY).to_bytes() == BODY
    lf = BODY.replace(b"\r\n", b"\n")
    assert Sdp.parse(lf).to_bytes() == lf
    assert Sdp.parse(BODY.rstrip(b"\r\n")).to_bytes() == BODY.rstrip(b"\r\n")


def test_media_sections_and_connections() -> None:
    sdp = Sdp.parse(BODY)
    audio, video = sdp.media()
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP",
                                                                     ["0", "8", "101"])
    assert (video.port, video.port_count) == (51372, "/2")
    assert sdp.media_address(audio).address == "10.0.0.6"  # its own c=
    assert sdp.media_address(video).address == "10.0.0.5"  # the session's
    assert [c.address for _, c in sdp.connections()] == ["10.0.0.5", "10.0.0.6"]
    assert sdp.origin() is not None and sdp.origin()[1][5] == "10.0.0.5"


def test_rewrites_change_only_their_lines() -> None:
    sdp = Sdp.parse(BODY)
    audio, video = sdp.media()
    sdp.set_media_port(audio, 30000)
    sdp.set_media_port(video, 30002)
    i, _ = sdp.media_connection(audio)  # type: ignore[misc]
    sdp.set_connection(i, "192.0.2.1")
    sdp.set_origin_address("192.0.2.1")
    sdp.append("a=nortpproxy:yes")
    out = sdp.to_bytes()
    expected = (BODY.replace(b"m=audio 49170", b"m=audio 30000")
                .replace(b"m=video 51372/2", b"m=video 30002/2")
                .replace(b"c=IN IP4 10.0.0.6", b"c=IN IP4 192.0.2.1")
                .replace(b"IN IP4 10.0.0.5\r\ns=", b"IN IP4 192.0.2.1\r\ns=")
                + b"a=nortpproxy:yes\r\n")
    assert out == expected


@pytest.mark.parametrize("body", [b"", b"   \r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n",
                                  b"v=0\r\nm=audio\r\n"])
def test_broken_bodies_raise_sdp_error(body: bytes) -> None:
    with pytest.raises(SdpError):
        Sdp.parse(body).media()


def test_bad_connection_line() -> None:
    with pytest.raises(SdpError):
        Sdp.parse(b"v=0\r\nc=IN IP4\r\n").connections()


@given(st.binary(max_size=300))
def test_any_bytes_never_crash_otherwise(data: bytes) -> None:
    try:
        sdp = Sdp.parse(data)
        sdp.media()
        sdp.connections()
        sdp.origin()
    except SdpError:
        return
    crlf_only = data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n")
    if crlf_only or b"\r" not in data:  # one kind of line ending: kept as it was
        assert sdp.to_bytes() == data


def test_header_value_replacement_keeps_place_and_name() -> None:
    msg = parse_datagram(b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                         b"m: <sip:a@10.0.0.1>\r\nContact: <sip:c@10.0.0.2>\r\nCall-ID: c\r\n"
                         b"CSeq: 1 INVITE\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
                         b"Content-Length: 0\r\n\r\n")
    assert msg.set_header_value("contact", "<sip:c@192.0.2.1>", 1)
    assert not msg.set_header_value("contact", "x", 2)
    text = msg.to_bytes().decode()
    assert "m: <sip:a@10.0.0.1>\r\nContact: <sip:c@192.0.2.1>\r\nCall-ID" in text
    assert [c.uri_text for c in msg.contacts] == ["sip:a@10.0.0.1", "sip:c@192.0.2.1"]
    assert msg.set_header_value("CONTACT", "<sip:a@192.0.2.9>")  # the first line (nth 0)
    assert not msg.set_header_value("route", "<sip:r@h;lr>")
    assert "m: <sip:a@192.0.2.9>\r\nContact: <sip:c@192.0.2.1>\r\n" in msg.to_bytes().decode()
