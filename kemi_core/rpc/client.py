"""A small blocking JSON-RPC client for ``kemi rpc`` and tests."""

from __future__ import annotations

import json
import socket
from typing import Any

from kemi_core.rpc.server import socket_path


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def call(spec: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    """Call ``method`` on the control socket ``spec`` (unix:/path); RpcError on an error reply."""
    req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path(spec))
        sock.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if "error" in reply:
        raise RpcError(reply["error"].get("code", -1), reply["error"].get("message", ""))
    return reply.get("result")
