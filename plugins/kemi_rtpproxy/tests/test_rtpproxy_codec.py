"""The sans-IO parts of rtpproxy: commands, replies, flags, sockets, the SDP rewrite.

What the real relay test (rtpengine) cannot reach is checked here: the ``c<codecs>`` and
``Z<ms>`` modifiers (rtpengine does not offer those capabilities) and unix socket URLs (no
Debian package answers the rtpproxy protocol on a unix socket).
"""

from __future__ import annotations

import pytest

from kemi_core.api import ModuleError
from kemi_core.sip import Sdp
from kemi_rtpproxy import protocol
from kemi_rtpproxy.engage import (
    Engine,
    FlagError,
    _add_marker,
    _rewrite,
    parse_destroy_flags,
    parse_flags,
)
from kemi_rtpproxy.nodes import Node, parse_sock_param, pick


def test_commands() -> None:
    assert protocol.session_command(True, "", "c1", "10.0.0.5", 6000, "ft", None, 1) == \
        "U c1 10.0.0.5 6000 ft;1"
    assert protocol.session_command(False, "AS", "c1", "10.0.0.5", 7000, "ft", "tt", 2) == \
        "LAS c1 10.0.0.5 7000 ft;2 tt;2"
    assert protocol.delete_command("c1", "ft", "tt") == "D c1 ft tt"
    assert protocol.delete_command("c1", "ft", None) == "D c1 ft"
    assert protocol.with_cookie("123_4", "V") == b"123_4 V"
    assert protocol.split_cookie(b"123_4 20040107\n") == ("123_4", "20040107")


def test_replies() -> None:
    assert protocol.parse_session("41000 127.0.0.1 4") == protocol.SessionReply(
        41000, "127.0.0.1", "4")
    assert protocol.parse_session("35000") == protocol.SessionReply(35000)
    assert protocol.parse_session("0 0.0.0.0 4").port == 0
    for bad in ("E8", "E", "", "x 1.2.3.4", "70000"):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_session(bad)
    assert protocol.error_code("E8") == 8
    assert protocol.error_code("4000") is None


def test_flags() -> None:
    f = parse_flags("co")
    assert f.session_c and not f.trust_address and f.modifiers == ""
    f = parse_flags("aiewz20r1")
    assert (f.modifiers, f.repacketize, f.via_branch, f.trust_address) == ("AIES", 20, 1, True)
    with pytest.raises(FlagError, match="unknown option `q'"):
        parse_flags("q")
    with pytest.raises(FlagError):
        parse_flags("z")
    assert parse_destroy_flags("cot").no_to_tag
    assert parse_destroy_flags("z").via_branch == 0
    with pytest.raises(FlagError, match="unknown option `0'"):
        parse_destroy_flags("z20")


def test_modifiers_with_capabilities() -> None:
    node = Node("udp:127.0.0.1:7722", "udp", ("127.0.0.1", 7722), 1, 0)
    f = parse_flags("wz30")
    assert Engine._modifiers(f, node, "IP4", ["0", "8"]) == "S"  # neither capability
    node.caps = {protocol.CAP_REPACKETIZE: True, protocol.CAP_CODECS: True}
    assert Engine._modifiers(f, node, "IP4", ["0", "8"]) == "SZ30c0,8"
    assert Engine._modifiers(parse_flags("x"), node, "IP6", []) == "EI6"


def test_sock_param() -> None:
    nodes = parse_sock_param("udp:localhost:12221 udp:10.0.0.2:12222=2 unix:/run/rtpp.sock")
    assert [(n.proto, n.address, n.weight, n.set_id) for n in nodes] == [
        ("udp", ("127.0.0.1", 12221), 1, 0), ("udp", ("10.0.0.2", 12222), 2, 0),
        ("unix", "/run/rtpp.sock", 1, 0)]
    (n,) = parse_sock_param("2 == udp6:[::1]:7722")
    assert (n.proto, n.address, n.set_id) == ("udp6", ("::1", 7722), 2)
    assert parse_sock_param("NONE") == []
    with pytest.raises(ModuleError):
        parse_sock_param("x == udp:h:1")
    with pytest.raises(ModuleError):
        parse_sock_param("tcp:h:1")


def test_pick_keeps_a_call_on_one_node_and_follows_weights() -> None:
    a = Node("a", "udp", ("h", 1), 1, 0)
    b = Node("b", "udp", ("h", 2), 3, 0)
    firsts = [pick([a, b], f"call-{i}")[0] for i in range(400)]
    assert pick([a, b], "call-7") == pick([a, b], "call-7")
    assert 200 < firsts.count(b) < 400
    assert set(pick([a, b], "x")) == {a, b}


OFFER = ("v=0\r\no=u 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
         "m=audio 6000 RTP/AVP 0\r\nc=IN IP4 10.0.0.6\r\na=rtcp:6001 IN IP4 10.0.0.6\r\n"
         "m=video 6002 RTP/AVP 31\r\n")


def test_rewrite_as_kamailio() -> None:
    sdp = Sdp.parse(OFFER)
    streams = sdp.media()
    replies = [protocol.SessionReply(40000, "192.0.2.1"), protocol.SessionReply(40002)]
    _rewrite(sdp, streams, replies, "192.0.2.9", False, False)
    assert sdp.to_bytes().decode() == (
        "v=0\r\no=u 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\na=rtcp:40001\r\n"
        "m=video 40002 RTP/AVP 31\r\n")


def test_rewrite_with_a_given_address_and_hold() -> None:
    sdp = Sdp.parse(OFFER.replace("10.0.0.5", "0.0.0.0"))
    streams = sdp.media()
    _rewrite(sdp, streams[:1], [protocol.SessionReply(40000, "192.0.2.1")], "198.51.100.7",
             True, False)
    text = sdp.to_bytes().decode()
    assert "o=u 1 1 IN IP4 0.0.0.0" in text and "c=IN IP4 0.0.0.0\r\nt=0" in text
    assert "c=IN IP4 198.51.100.7\r\na=rtcp:40001" in text
    assert "m=video 6002" in text  # only the answered streams change


def test_marker_placement() -> None:
    assert _add_marker(b"v=0\r\n", "a=nortpproxy:yes") == b"v=0\r\na=nortpproxy:yes\r\n"
    assert _add_marker(b"v=0\n", "a=nortpproxy:yes") == b"v=0\r\na=nortpproxy:yes\n"
    assert _add_marker(b"v=0", "a=x") == b"v=0\r\na=x\r\n"
