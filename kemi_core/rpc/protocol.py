"""JSON-RPC 2.0 framing and dispatch, sans-IO: a request line in, a response line out."""

from __future__ import annotations

import json
import logging
from typing import Any

from kemi_core.errors import KemiError
from kemi_core.runtime.core import Core
from kemi_core.runtime.ratelimit import brief_error

log = logging.getLogger("kemi.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
COMMAND_FAILED = -32000


class RpcFault(Exception):
    """Raised by a command to answer a JSON-RPC error with this code and message."""

    def __init__(self, message: str, code: int = COMMAND_FAILED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(req_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": {"code": code, "message": message}}


def error_line(req_id: Any, code: int, message: str) -> bytes:
    """A JSON-RPC error response line."""
    return _encode(_error(req_id, code, message))


def handle_line(core: Core, line: bytes) -> bytes:
    """Answer one request line; never raises."""
    try:
        req = json.loads(line)
    except ValueError as exc:  # also invalid UTF-8 (UnicodeDecodeError)
        return _encode(_error(None, PARSE_ERROR, f"parse error: {exc}"))
    except RecursionError:
        return _encode(_error(None, PARSE_ERROR, "parse error: JSON nested too deep"))
    if not isinstance(req, dict) or not isinstance(req.get("method"), str):
        return _encode(_error(None, INVALID_REQUEST, "invalid request"))
    req_id = req.get("id")
    method = req["method"]
    params = req.get("params", [])
    if isinstance(params, dict):
        params = list(params.values())
    if not isinstance(params, list):
        return _encode(_error(req_id, INVALID_PARAMS, "params must be a list"))
    try:
        result = run_command(core, method, params)
    except RpcFault as exc:
        return _encode(_error(req_id, exc.code, exc.message))
    return _encode({"jsonrpc": "2.0", "id": req_id, "result": result})


def run_command(core: Core, method: str, params: list[Any]) -> Any:
    """Run one control-socket command (whatever protocol brought it): its result, or RpcFault
    with a JSON-RPC code (METHOD_NOT_FOUND, COMMAND_FAILED or the command's own)."""
    cmd = core.rpc_commands.get(method)
    if cmd is None:
        raise RpcFault(f"command {method} not found", METHOD_NOT_FOUND)
    try:
        return cmd.func(core, params)
    except RpcFault:
        raise
    except KemiError as exc:  # e.g. a reload refused: the reason is the whole answer
        raise RpcFault(str(exc))
    except Exception as exc:  # a failing command answers an error; the server goes on
        # one line: the parameters come from whoever talks to the socket
        log.error("rpc %s failed: %s", method, brief_error(exc))
        raise RpcFault(f"{type(exc).__name__}: {exc}")


def _encode(obj: dict[str, Any]) -> bytes:
    try:
        return json.dumps(obj, default=str).encode() + b"\n"
    except (ValueError, RecursionError) as exc:  # a result JSON cannot carry (e.g. a cycle)
        fallback = _error(obj.get("id"), COMMAND_FAILED, f"result cannot be encoded: {exc}")
        return json.dumps(fallback, default=repr).encode() + b"\n"
