"""JSON-RPC 2.0 framing: results, errors, never an exception."""

from __future__ import annotations

import json

from kemi_core.rpc.protocol import METHOD_NOT_FOUND, PARSE_ERROR, RpcFault, handle_line
from kemi_core.testing.capture import offline_core


def _call(core, line: bytes) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(handle_line(core, line))


def test_result_error_and_faults() -> None:
    core, _ = offline_core()

    def failing(c, p):  # type: ignore[no-untyped-def]
        raise RpcFault("script broken: x.lua:3", code=500)

    def crashing(c, p):  # type: ignore[no-untyped-def]
        raise KeyError("k")

    core.add_rpc("t.fail", failing)
    core.add_rpc("t.crash", crashing)
    ok = _call(core, b'{"jsonrpc":"2.0","id":3,"method":"core.version"}')
    assert ok["id"] == 3 and ok["result"].startswith("kemi ")
    assert _call(core, b"{nope")["error"]["code"] == PARSE_ERROR
    assert _call(core, b'{"jsonrpc":"2.0","id":1,"method":"x.y"}')["error"]["code"] == METHOD_NOT_FOUND
    assert _call(core, b'{"jsonrpc":"2.0","id":1,"method":"t.fail"}')["error"] == {
        "code": 500, "message": "script broken: x.lua:3"}
    assert "KeyError" in _call(core, b'{"jsonrpc":"2.0","id":1,"method":"t.crash"}')["error"]["message"]
    assert "core.psx" in _call(core, b'{"jsonrpc":"2.0","id":1,"method":"system.listMethods"}')["result"]
