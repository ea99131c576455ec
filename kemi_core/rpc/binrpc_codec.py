"""Kamailio's binrpc wire format, sans-IO: packets and typed records to and from bytes.

Learnt by capturing what ``kamcmd`` and Kamailio 5.6's ctl module exchange (see
docs/binrpc.md). A packet is a 2-byte header, a body length and a cookie, then the body:

    0xA1                      magic 0xA, protocol version 1
    kind<<4 | (L-1)<<2 | (C-1)  kind 0 request, 1 reply, 3 fault; L, C: bytes of length, cookie
    length (L bytes, big-endian), cookie (C bytes; a reply echoes the request's)
    body: records

A record starts with one byte: the low nibble is the type; in the high nibble, bit 3 clear means
bits 0-2 are the value's size (0-7 bytes), bit 3 set means bits 0-2 count the size bytes that
follow (1-4), and 0 size bytes marks the end of a struct or array (0x83, 0x84). Ints are
big-endian, as short as the value allows (0 takes no byte; negatives take 4, two's complement);
doubles travel as int(value * 1000); strings and struct member names carry their NUL.
A request's body is the method name (a string) then its parameters; a fault's body is an int
code and a string message.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

MAGIC_VERSION = 0xA1

#: Refuse a packet body larger than this (a client that means no harm sends a few hundred bytes).
MAX_BODY = 1 << 20
#: Structs and arrays nested deeper than this are refused.
MAX_DEPTH = 32

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class PacketKind(enum.IntEnum):
    REQUEST = 0
    REPLY = 1
    FAULT = 3


class RecordType(enum.IntEnum):
    INT = 0
    STR = 1
    DOUBLE = 2
    STRUCT = 3
    ARRAY = 4
    AVP = 5  # a struct member's name, followed by its value
    BYTES = 6


class BinRpcError(ValueError):
    """Malformed binrpc input; ``cookie`` is set once the packet header was readable."""

    def __init__(self, reason: str, cookie: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cookie = cookie


@attrs.frozen
class Struct:
    """A binrpc struct: member names may repeat (Kamailio lists ``socket: {...}`` that way)."""

    members: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dict(self.members)

    def __getitem__(self, name: str) -> Any:
        for key, value in self.members:
            if key == name:
                return value
        raise KeyError(name)


@attrs.frozen
class Packet:
    kind: PacketKind
    cookie: bytes
    body: bytes


# ---- packets ----------------------------------------------------------------------------
def _size_bytes(n: int) -> int:
    """How many bytes (1-4) the unsigned ``n`` needs."""
    return max(1, (n.bit_length() + 7) // 8)


def encode_packet(kind: PacketKind, cookie: bytes, body: bytes) -> bytes:
    if not 1 <= len(cookie) <= 4:
        raise ValueError("a binrpc cookie has 1 to 4 bytes")
    lsize = _size_bytes(len(body))
    if lsize > 4:
        raise ValueError("binrpc body too large")
    head = bytes([MAGIC_VERSION, (kind << 4) | ((lsize - 1) << 2) | (len(cookie) - 1)])
    return head + len(body).to_bytes(lsize, "big") + cookie + body


class PacketReader:
    """Cuts a byte stream into packets: ``feed(data)`` returns the packets now complete.

    Raises BinRpcError on a bad magic/version, an unknown packet kind or an oversized body:
    the stream cannot be resynchronised after that, so the connection should close.
    """

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.max_body = max_body
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole packet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out: list[Packet] = []
        while True:
            pkt = self._next()
            if pkt is None:
                return out
            out.append(pkt)

    def _next(self) -> Packet | None:
        buf = self._buf
        if not buf:
            return None
        if buf[0] != MAGIC_VERSION:
            raise BinRpcError(f"not a binrpc version 1 packet (first byte 0x{buf[0]:02x})")
        if len(buf) < 2:
            return None
        flags = buf[1]
        try:
            kind = PacketKind(flags >> 4)
        except ValueError:
            raise BinRpcError(f"unknown binrpc packet type {flags >> 4}")
        lsize, csize = ((flags >> 2) & 3) + 1, (flags & 3) + 1
        head = 2 + lsize + csize
        if len(buf) < head:
            return None
        length = int.from_bytes(buf[2:2 + lsize], "big")
        cookie = bytes(buf[2 + lsize:head])
        if length > self.max_body:
            raise BinRpcError(f"binrpc packet of {length} bytes (limit {self.max_body})", cookie)
        if len(buf) < head + length:
            return None
        body = bytes(buf[head:head + length])
        del buf[:head + length]
        return Packet(kind, cookie, body)


# ---- records: encoding ------------------------------------------------------------------
def _record_head(rtype: int, size: int) -> bytes:
    if size < 8:
        return bytes([(size << 4) | rtype])
    n = _size_bytes(size)
    return bytes([0x80 | (n << 4) | rtype]) + size.to_bytes(n, "big")


def _int_record(rtype: int, value: int) -> bytes:
    raw = value & 0xFFFFFFFF
    size = (raw.bit_length() + 7) // 8
    return bytes([(size << 4) | rtype]) + raw.to_bytes(size, "big")


def _str_record(rtype: int, data: bytes) -> bytes:
    return _record_head(rtype, len(data) + 1) + data + b"\0"


def encode_value(value: Any, depth: int = 0) -> bytes:
    """One Python value as a record: int (int32; larger ones as their digits), str, float
    (milli-precision), bool, None (an empty string), bytes, Struct or dict (struct), list
    or tuple (array)."""
    if depth > MAX_DEPTH:
        raise ValueError("binrpc value nested too deeply")
    if isinstance(value, bool):
        return _int_record(RecordType.INT, int(value))
    if isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            return _int_record(RecordType.INT, value)
        return _str_record(RecordType.STR, str(value).encode())
    if isinstance(value, str):
        return _str_record(RecordType.STR, value.encode("utf-8", "replace"))
    if isinstance(value, float):
        milli = round(value * 1000)
        if INT32_MIN <= milli <= INT32_MAX:
            return _int_record(RecordType.DOUBLE, milli)
        return _str_record(RecordType.STR, repr(value).encode())
    if value is None:
        return _str_record(RecordType.STR, b"")
    if isinstance(value, (bytes, bytearray)):
        return _record_head(RecordType.BYTES, len(value)) + bytes(value)
    if isinstance(value, (dict, Struct)):
        items = value.items() if isinstance(value, dict) else value.members
        parts = [bytes([RecordType.STRUCT])]
        for name, member in items:
            parts.append(_str_record(RecordType.AVP, str(name).encode("utf-8", "replace")))
            parts.append(encode_value(member, depth + 1))
        parts.append(bytes([0x80 | RecordType.STRUCT]))
        return b"".join(parts)
    if isinstance(value, (list, tuple)):
        inner = b"".join(encode_value(v, depth + 1) for v in value)
        return bytes([RecordType.ARRAY]) + inner + bytes([0x80 | RecordType.ARRAY])
    return _str_record(RecordType.STR, str(value).encode("utf-8", "replace"))


def encode_values(values: Iterable[Any]) -> bytes:
    return b"".join(encode_value(v) for v in values)


def encode_request(method: str, params: Iterable[Any], cookie: bytes) -> bytes:
    body = _str_record(RecordType.STR, method.encode()) + encode_values(params)
    return encode_packet(PacketKind.REQUEST, cookie, body)


def encode_fault(code: int, message: str, cookie: bytes) -> bytes:
    body = _int_record(RecordType.INT, code) + _str_record(RecordType.STR, message.encode())
    return encode_packet(PacketKind.FAULT, cookie, body)


# ---- records: decoding ------------------------------------------------------------------
_END = object()


class _Cursor:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.body):
            raise BinRpcError("binrpc record runs past the end of the packet")
        out = self.body[self.pos:end]
        self.pos = end
        return out

    def record(self, depth: int) -> tuple[int, Any]:
        """(record type, value); the value is _END for an end-of-struct/array marker."""
        head = self.take(1)[0]
        rtype = head & 0x0F
        if head & 0x80:
            nbytes = (head >> 4) & 7
            if nbytes == 0:
                return rtype, _END
            if nbytes > 4:
                raise BinRpcError(f"binrpc record size of {nbytes} bytes")
            size = int.from_bytes(self.take(nbytes), "big")
        else:
            size = head >> 4
        if rtype in (RecordType.STRUCT, RecordType.ARRAY):
            if depth >= MAX_DEPTH:
                raise BinRpcError("binrpc records nested too deeply")
            return rtype, (self.struct(depth + 1) if rtype == RecordType.STRUCT
                           else self.array(depth + 1))
        raw = self.take(size)
        if rtype in (RecordType.INT, RecordType.DOUBLE):
            if size > 4:
                raise BinRpcError(f"binrpc int of {size} bytes")
            num = int.from_bytes(raw, "big", signed=size == 4)
            return rtype, num if rtype == RecordType.INT else num / 1000
        if rtype in (RecordType.STR, RecordType.AVP):
            return rtype, _text(raw)
        if rtype == RecordType.BYTES:
            return rtype, raw
        raise BinRpcError(f"unknown binrpc record type {rtype}")

    def struct(self, depth: int) -> Struct:
        members: list[tuple[str, Any]] = []
        while True:
            rtype, name = self.record(depth)
            if name is _END:
                if rtype != RecordType.STRUCT:
                    raise BinRpcError("binrpc struct closed by an array end")
                return Struct(tuple(members))
            if rtype != RecordType.AVP:
                raise BinRpcError("binrpc struct member without a name")
            vtype, value = self.record(depth)
            if value is _END or vtype == RecordType.AVP:
                raise BinRpcError(f"binrpc struct member {name!r} without a value")
            members.append((name, value))

    def array(self, depth: int) -> list[Any]:
        items: list[Any] = []
        while True:
            rtype, value = self.record(depth)
            if value is _END:
                if rtype != RecordType.ARRAY:
                    raise BinRpcError("binrpc array closed by a struct end")
                return items
            if rtype == RecordType.AVP:
                raise BinRpcError("binrpc member name outside a struct")
            items.append(value)


def _text(raw: bytes) -> str:
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return raw.decode("utf-8", "replace")


def iter_values(body: bytes) -> Iterator[Any]:
    """The top-level values of a packet body; BinRpcError on malformed records."""
    cur = _Cursor(body)
    while cur.pos < len(body):
        rtype, value = cur.record(0)
        if value is _END:
            raise BinRpcError("binrpc end marker outside a struct or array")
        if rtype == RecordType.AVP:
            raise BinRpcError("binrpc member name outside a struct")
        yield value


def decode_values(body: bytes) -> list[Any]:
    return list(iter_values(body))


def decode_request(pkt: Packet) -> tuple[str, list[Any]]:
    """(method, params) of a request packet."""
    if pkt.kind != PacketKind.REQUEST:
        raise BinRpcError(f"expected a request, got a {pkt.kind.name.lower()}", pkt.cookie)
    try:
        values = decode_values(pkt.body)
    except BinRpcError as exc:
        raise BinRpcError(exc.reason, pkt.cookie)
    if not values or not isinstance(values[0], str):
        raise BinRpcError("binrpc request without a method name", pkt.cookie)
    return values[0], values[1:]
