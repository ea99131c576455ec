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


class CtlUnreachable(OSError):
    """No usable answer from the control socket; the text says why in one line."""


def call(spec: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    """Call ``method`` on the control socket ``spec`` (unix:/path or tcp:host:port); RpcError
    on an error reply, CtlUnreachable when there is no server or no JSON-RPC answer."""
    try:
        addr = parse_ctl_address(spec)
    except ValueError as exc:
        raise CtlUnreachable(str(exc)) from None
    if addr.proto not in ("unix", "tcp"):
        raise CtlUnreachable(f"control socket {spec!r}: kemi rpc speaks to unix: and tcp: "
                             "sockets")
    req = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    family = socket.AF_UNIX if addr.proto == "unix" else (
        socket.AF_INET6 if ":" in addr.host else socket.AF_INET)
    target: str | tuple[str, int] = addr.path if addr.proto == "unix" else (addr.host, addr.port)
    try:
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
    except TimeoutError:
        raise CtlUnreachable(f"{spec}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise CtlUnreachable(f"cannot reach {spec}: {exc.strerror or exc}") from None
    try:
        reply = json.loads(buf)
    except ValueError:
        what = "closed the connection" if not buf else "answered something that is not JSON-RPC"
        raise CtlUnreachable(f"{spec} {what}") from None
    if not isinstance(reply, dict):
        raise CtlUnreachable(f"{spec} answered something that is not JSON-RPC")
    if "error" in reply:
        err = reply["error"] if isinstance(reply["error"], dict) else {}
        raise RpcError(err.get("code", -1), str(err.get("message", "")))
    return reply.get("result")
