"""A binrpc connection: requests answered in order, faults as Kamailio sends them."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.rpc.binrpc_codec import (
    BinRpcError,
    PacketKind,
    PacketReader,
    Struct,
    decode_values,
    encode_packet,
    encode_request,
)
from kemi_core.rpc.binrpc_server import new_session
from kemi_core.rpc.binrpc_session import kamailio_layout, reply_values
from kemi_core.rpc.protocol import INVALID_PARAMS, RpcFault
from kemi_core.testing.capture import offline_core


def _answers(data: bytes) -> list[tuple[PacketKind, bytes, list[Any]]]:
    return [(p.kind, p.cookie, decode_values(p.body)) for p in PacketReader().feed(data)]


@pytest.fixture
def session():  # type: ignore[no-untyped-def]
    core, _ = offline_core()
    core.add_rpc("t.echo", lambda c, p: p)
    core.add_rpc("t.nothing", lambda c, p: None)

    def bad_params(c, p):  # type: ignore[no-untyped-def]
        raise RpcFault("need two", INVALID_PARAMS)

    core.add_rpc("t.bad", bad_params)
    core.add_rpc("t.crash", lambda c, p: 1 // 0)
    return new_session(core)


def test_requests_in_one_read_are_answered_in_order(session) -> None:  # type: ignore[no-untyped-def]
    data = (encode_request("t.echo", [1, "a", {"k": 2}], b"\x01")
            + encode_request("nope.x", [], b"\x02\x03")
            + encode_request("t.bad", [], b"\x04")
            + encode_request("t.crash", [], b"\x05")
            + encode_request("t.nothing", [], b"\x06"))
    out = _answers(session.receive(data))
    assert out[0] == (PacketKind.REPLY, b"\x01", [1, "a", Struct((("k", 2),))])
    assert out[1] == (PacketKind.FAULT, b"\x02\x03", [500, "command nope.x not found"])
    assert out[2] == (PacketKind.FAULT, b"\x04", [400, "need two"])
    assert out[3][0] == PacketKind.FAULT and out[3][2][0] == 500
    assert "ZeroDivisionError" in out[3][2][1]
    assert out[4] == (PacketKind.REPLY, b"\x06", [])


def test_a_packet_in_pieces_and_a_bad_request(session) -> None:  # type: ignore[no-untyped-def]
    data = encode_request("core.version", [], b"\x09\x09")
    assert session.receive(data[:5]) == b""
    ((kind, cookie, values),) = _answers(session.receive(data[5:]))
    assert kind == PacketKind.REPLY and values[0].startswith("kemi ")
    # a request with no method name: a fault with its cookie, and the connection goes on
    bad = encode_packet(PacketKind.REQUEST, b"\x07", bytes([0x10, 0x05]))
    assert _answers(session.receive(bad)) == [(PacketKind.FAULT, b"\x07",
                                               [400, "binrpc request without a method name"])]
    assert _answers(session.receive(data))[0][0] == PacketKind.REPLY
    with pytest.raises(BinRpcError):
        session.receive(b'{"jsonrpc": "2.0"}\n')


def test_results_laid_out_as_kamailio_lays_them_out() -> None:
    assert reply_values(None) == []
    assert reply_values(["a", "b"]) == ["a", "b"]  # a list: one top-level record per item
    layout = kamailio_layout({"socket": [{"proto": "udp"}, {"proto": "tcp"}], "n": 2,
                              "none": []})
    assert layout == Struct((("socket", Struct((("proto", "udp"),))),
                             ("socket", Struct((("proto", "tcp"),))), ("n", 2)))
