"""A small blocking JSON-RPC client for ``kemi rpc`` and tests."""

from __future__ import annotations

import json
import socket
from typing import Any

from kemi_core.rpc.ctl_address import parse_ctl_address


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def call(spec: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    """Call ``method`` on the control socket ``spec`` (unix:/path or tcp:host:port);
    RpcError on an error reply."""
    addr = parse_ctl_address(spec)
    if addr.proto not in ("unix", "tcp"):
        raise ValueError(f"control socket {spec!r}: kemi rpc speaks to unix: and tcp: sockets")
    req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    family = socket.AF_UNIX if addr.proto == "unix" else socket.AF_INET
    target: str | tuple[str, int] = addr.path if addr.proto == "unix" else (addr.host, addr.port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(target)
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
