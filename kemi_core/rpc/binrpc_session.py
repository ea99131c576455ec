"""One binrpc connection, sans-IO: request bytes in, reply bytes out.

Commands are the same ones JSON-RPC reaches (``core.rpc_commands``); their results are Python
values, laid out the way Kamailio's RPCs lay out theirs so ``kamcmd`` prints them alike:
a list result is a sequence of top-level records (``system.listMethods``, ``stats.get_statistics``),
a dict is a struct, and a list inside a struct repeats the member name once per item (Kamailio
lists ``socket: {...}`` that way; kamcmd does not print array records inside structs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.rpc.binrpc_codec import (
    BinRpcError,
    PacketKind,
    PacketReader,
    Struct,
    decode_request,
    encode_fault,
    encode_packet,
    encode_values,
)
from kemi_core.rpc.protocol import INVALID_PARAMS, METHOD_NOT_FOUND, RpcFault

#: Kamailio's fault codes as kamcmd shows them ("error: 500 - command x not found").
FAULT_BAD_REQUEST = 400
FAULT_SERVER = 500

Runner = Callable[[str, list[Any]], Any]


def fault_code(code: int) -> int:
    """A JSON-RPC error code as the SIP-like code Kamailio's faults carry."""
    if 100 <= code <= 699:
        return code
    if code == INVALID_PARAMS:
        return FAULT_BAD_REQUEST
    return FAULT_SERVER


def _member_items(value: dict[Any, Any] | Struct) -> list[tuple[str, Any]]:
    items = value.items() if isinstance(value, dict) else value.members
    out: list[tuple[str, Any]] = []
    for name, member in items:
        if isinstance(member, (list, tuple)):
            out.extend((str(name), kamailio_layout(item)) for item in member)
        else:
            out.append((str(name), kamailio_layout(member)))
    return out


def kamailio_layout(value: Any) -> Any:
    """``value`` with every dict made a Struct whose list members repeat their name."""
    if isinstance(value, (dict, Struct)):
        return Struct(tuple(_member_items(value)))
    if isinstance(value, (list, tuple)):
        return [kamailio_layout(v) for v in value]
    return value


def reply_values(result: Any) -> list[Any]:
    """The top-level records of a reply carrying ``result``."""
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return [kamailio_layout(v) for v in result]
    return [kamailio_layout(result)]


def plain_params(params: list[Any]) -> list[Any]:
    """Request parameters as JSON-RPC commands take them (structs as dicts)."""
    return [p.to_dict() if isinstance(p, Struct) else p for p in params]


class BinRpcSession:
    """Answers the binrpc requests of one stream connection, in order.

    ``receive`` returns the bytes to send back (possibly none yet: a packet may arrive in
    pieces). A malformed request whose header could be read gets a fault and the connection
    goes on; a stream that is not binrpc raises BinRpcError (close the connection).
    """

    def __init__(self, runner: Runner, max_body: int | None = None) -> None:
        self.runner = runner
        self.reader = PacketReader() if max_body is None else PacketReader(max_body)

    def receive(self, data: bytes) -> bytes:
        return b"".join(self.answer(pkt) for pkt in self.reader.feed(data))

    def answer(self, pkt: Any) -> bytes:
        try:
            method, params = decode_request(pkt)
        except BinRpcError as exc:
            return encode_fault(FAULT_BAD_REQUEST, exc.reason, pkt.cookie)
        try:
            result = self.runner(method, plain_params(params))
        except RpcFault as exc:
            message = exc.message
            if exc.code == METHOD_NOT_FOUND:
                message = f"command {method} not found"
            return encode_fault(fault_code(exc.code), message, pkt.cookie)
        try:
            body = encode_values(reply_values(result))
        except (ValueError, RecursionError) as exc:
            return encode_fault(FAULT_SERVER, f"reply not encodable: {exc}", pkt.cookie)
        return encode_packet(PacketKind.REPLY, pkt.cookie, body)
