"""binrpc wire format: packets captured between kamcmd and Kamailio 5.6, round trips, garbage."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.rpc.binrpc_codec import (
    BinRpcError,
    Packet,
    PacketKind,
    PacketReader,
    Struct,
    decode_request,
    decode_values,
    encode_fault,
    encode_packet,
    encode_request,
    encode_values,
)

# kamcmd -> Kamailio 5.6.3 "core.version", and the reply (captured on a unix socket relay).
VERSION_REQ = bytes.fromhex("a1030f459f631c910d636f72652e76657273696f6e00")
VERSION_REPLY = bytes.fromhex("a11321459f631c911f6b616d61696c696f20352e362e3320287838365f36342f"
                              "6c696e7578292000")
# core.uptime's reply: a struct of two strings and an int.
UPTIME_REPLY = bytes.fromhex(
    "a11352104245db03456e6f77009119467269204465632020342032303a32353a313420323032360095"
    "0975705f73696e6365009119467269204465632020342032303a32343a35382032303236007575707469"
    "6d6500101083")
# kamcmd core.echo 1 abc s:5 300 70000 2.5 "" 4294967295: ints, strings, a double (x1000).
ECHO_REQ = bytes.fromhex("a1032b1c68936e910a636f72652e6563686f001001416162630021350020012c30"
                         "0111702209c40040ffffffff404876e7ff")
# "command nosuch.cmd not found": a fault (kind 3), code 500 and a message.
FAULT_REPLY = bytes.fromhex("a133225994d7972001f4911d636f6d6d616e64206e6f737563682e636d64206e"
                            "6f7420666f756e6400")


def _one(data: bytes) -> Packet:
    packets = PacketReader().feed(data)
    assert len(packets) == 1
    return packets[0]


def test_captured_request_and_reply() -> None:
    req = _one(VERSION_REQ)
    assert req.kind == PacketKind.REQUEST and req.cookie == bytes.fromhex("459f631c")
    assert decode_request(req) == ("core.version", [])
    # our encoder writes exactly what kamcmd and Kamailio write
    assert encode_request("core.version", [], req.cookie) == VERSION_REQ
    reply = _one(VERSION_REPLY)
    assert reply.kind == PacketKind.REPLY and reply.cookie == req.cookie
    assert decode_values(reply.body) == ["kamailio 5.6.3 (x86_64/linux) "]
    assert encode_packet(PacketKind.REPLY, reply.cookie,
                         encode_values(["kamailio 5.6.3 (x86_64/linux) "])) == VERSION_REPLY


def test_captured_struct_params_and_fault() -> None:
    up = _one(UPTIME_REPLY)
    (struct,) = decode_values(up.body)
    assert struct == Struct((("now", "Fri Dec  4 20:25:14 2026"),
                             ("up_since", "Fri Dec  4 20:24:58 2026"), ("uptime", 16)))
    assert encode_values([struct]) == up.body
    method, params = decode_request(_one(ECHO_REQ))
    assert method == "core.echo"
    assert params[:7] == [1, "abc", "5", 300, 70000, 2.5, 0]
    assert params[7] == -1  # 4294967295 travels as a 4-byte two's complement int
    fault = _one(FAULT_REPLY)
    assert fault.kind == PacketKind.FAULT
    assert decode_values(fault.body) == [500, "command nosuch.cmd not found"]
    assert encode_fault(500, "command nosuch.cmd not found", fault.cookie) == FAULT_REPLY


def test_wide_and_odd_values() -> None:
    text = "x" * 70000  # a 3-byte size field
    assert decode_values(encode_values([text])) == [text]
    assert decode_values(encode_values([2**40, None, True, b"\x00raw"])) == [
        str(2**40), "", 1, b"\x00raw"]
    assert decode_values(encode_values([{"a": [1, {"b": 2.5}]}])) == [
        Struct((("a", [1, Struct((("b", 2.5),))]),))]


# ---- round trips -----------------------------------------------------------------------
int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
millis = st.integers(min_value=-(2**31), max_value=2**31 - 1).map(lambda m: m / 1000)
scalars = int32 | st.text(max_size=40) | millis | st.binary(max_size=40)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(st.tuples(st.text(max_size=8), inner), max_size=4).map(
        lambda members: Struct(tuple(members))),
    max_leaves=20)


@given(st.lists(values, max_size=5), st.binary(min_size=1, max_size=4))
@settings(max_examples=300, deadline=None)  # no timing: a loaded machine is slow
def test_round_trip(vals: list[Any], cookie: bytes) -> None:
    body = encode_values(vals)
    assert decode_values(body) == vals
    data = encode_packet(PacketKind.REPLY, cookie, body)
    pkt = _one(data)
    assert (pkt.kind, pkt.cookie, pkt.body) == (PacketKind.REPLY, cookie, body)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.lists(values, max_size=3)),
                min_size=1, max_size=4), st.data())
@settings(max_examples=100)
def test_stream_cut_anywhere(requests: list[tuple[str, list[Any]]], data: st.DataObject) -> None:
    stream = b"".join(encode_request(m, p, i.to_bytes(2, "big"))
                      for i, (m, p) in enumerate(requests))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = PacketReader()
    got = []
    last = 0
    for cut in [*cuts, len(stream)]:
        got += reader.feed(stream[last:cut])
        last = cut
    assert [decode_request(p) for p in got] == [(m, p) for m, p in requests]
    assert reader.pending == 0


# ---- garbage ---------------------------------------------------------------------------
@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_garbage_body_raises_binrpc_error_only(body: bytes) -> None:
    try:
        decode_values(body)
    except BinRpcError:
        pass


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_garbage_stream_raises_binrpc_error_only(data: bytes) -> None:
    try:
        for pkt in PacketReader().feed(data):
            try:
                decode_request(pkt)
            except BinRpcError as exc:
                assert exc.cookie == pkt.cookie
    except BinRpcError:
        pass


@pytest.mark.parametrize("data, why", [
    (b"{\"jsonrpc\"", "first byte"),
    (bytes([0xA1, 0x23]), "packet type"),
    (bytes([0xA1, 0x0C]) + (2**21).to_bytes(4, "big") + b"\x01", "limit"),
])
def test_bad_streams(data: bytes, why: str) -> None:
    with pytest.raises(BinRpcError, match=why):
        PacketReader().feed(data)


@pytest.mark.parametrize("body, why", [
    (bytes([0x03, 0x10, 0x01]), "without a name"),  # struct member without its name
    (bytes([0x03, 0x25, 0x61, 0x00, 0x83]), "without a value"),
    (bytes([0x04, 0x83]), "closed by a struct end"),
    (bytes([0x83]), "outside a struct"),
    (bytes([0x25, 0x61, 0x00]), "outside a struct"),
    (bytes([0x03] * 40), "nested too deeply"),
    (bytes([0x91, 0x20, 0x61]), "past the end"),
    (bytes([0x50, 1, 2, 3, 4, 5]), "int of 5 bytes"),
    (bytes([0x07]), "unknown binrpc record type 7"),
    (bytes([0xD1, 0, 0, 0, 0, 1]), "size of 5 bytes"),
])
def test_bad_records(body: bytes, why: str) -> None:
    with pytest.raises(BinRpcError, match=why):
        decode_values(body)


def test_request_needs_a_method_name() -> None:
    pkt = _one(encode_packet(PacketKind.REQUEST, b"\x01\x02", encode_values([5])))
    with pytest.raises(BinRpcError, match="method name") as info:
        decode_request(pkt)
    assert info.value.cookie == b"\x01\x02"
