"""JSON-RPC documents as Kamailio's jsonrpcs module writes them, sans-IO.

Commands run through the core's own dispatcher (``core.rpc_request``, the control socket's);
this layer only turns its answer into Kamailio's shape: error code 500 "Method Not Found" for an
unknown command, 500 with the reason for a failing one, and cJSON's layout (tabs, one member a
line) when ``pretty_format`` is on.
"""

from __future__ import annotations

import json
from typing import Any

from kemi_core.api import Core

#: The control socket's JSON-RPC codes (kemi_core.rpc.protocol) -> Kamailio's RPC fault codes.
_KAMAILIO_CODES = {-32601: (500, "Method Not Found"), -32602: (400, None), -32600: (400, None),
                   -32700: (400, None), -32000: (500, None)}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def pretty(value: Any, depth: int = 0) -> str:
    """cJSON's formatted print: objects one member a line indented with tabs, ``"key":\\tvalue``;
    arrays on one line, ``[a, b]``."""
    if isinstance(value, dict):
        if not value:
            return "{\n" + "\t" * depth + "}"
        inner = "\t" * (depth + 1)
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}:\t{pretty(v, depth + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "\t" * depth + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(pretty(v, depth + 1) for v in value) + "]"
    return _scalar(value)


def compact(value: Any) -> str:
    """cJSON's unformatted print."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def render(doc: dict[str, Any], pretty_format: bool) -> bytes:
    return (pretty(doc) if pretty_format else compact(doc)).encode()


def answer(core: Core, request: dict[str, Any]) -> dict[str, Any]:
    """Run one JSON-RPC request object (a ``reply_name`` member is the transport's, not the
    command's) and return Kamailio's response object."""
    req = {k: v for k, v in request.items() if k != "reply_name"}
    raw = json.loads(core.rpc_request(json.dumps(req, default=str).encode()))
    doc: dict[str, Any] = {"jsonrpc": "2.0"}
    if "error" in raw:
        code = int(raw["error"].get("code", -32000))
        message = str(raw["error"].get("message", ""))
        mapped, text = _KAMAILIO_CODES.get(code, (code, None))
        doc["error"] = {"code": mapped, "message": text or message}
    else:
        result = raw.get("result")
        doc["result"] = {} if result is None else result
    if "id" in request:
        doc["id"] = request["id"]
    return doc


def parse_request(data: bytes) -> dict[str, Any] | None:
    """The request object in a datagram or FIFO document; None when it is not one (Kamailio
    answers nothing to what it cannot read)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("method"), str) else None


def split_documents(buf: bytes) -> tuple[list[bytes], bytes]:
    """Whole JSON documents at the start of ``buf`` (a FIFO stream) and the incomplete rest.
    Text that can never become a document (a stray line) is dropped up to its newline."""
    docs: list[bytes] = []
    decoder = json.JSONDecoder()
    text = buf.decode("utf-8", "replace")
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return docs, b""
        try:
            _, end = decoder.raw_decode(text, pos)
        except ValueError:
            nl = text.find("\n", pos)
            if text[pos] != "{" and nl >= 0:  # garbage line: skip it
                pos = nl + 1
                continue
            if text[pos] == "{" and nl >= 0 and _balanced(text[pos:]):
                pos = nl + 1  # a complete but invalid document
                continue
            return docs, text[pos:].encode()
        docs.append(text[pos:end].encode())
        pos = end


def _balanced(text: str) -> bool:
    """Braces outside strings close as often as they open (a whole, if broken, document)."""
    depth, in_str, esc = 0, False, False
    for c in text:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
            continue
        if c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return True
    return False
