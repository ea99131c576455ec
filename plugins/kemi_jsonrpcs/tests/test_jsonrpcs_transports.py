"""jsonrpcs: Kamailio's FIFO and datagram JSON-RPC transports on kemi and on Kamailio 5.6 with
the same config; the answers have the same layout, codes and messages."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_jsonrpcs.protocol import pretty, split_documents

CFG = cfg_preamble("sl", "pv", "jsonrpcs") + """modparam("jsonrpcs", "fifo_name", "{dir}/rpc.fifo")
modparam("jsonrpcs", "dgram_socket", "{dir}/rpc.sock")
modparam("jsonrpcs", "fifo_reply_dir", "{dir}/")
request_route {
  jsonrpc_exec('{"jsonrpc": "2.0", "method": "core.nonexistent", "id": 7}');
  sl_send_reply("200", "[$jsonrpl(code)][$jsonrpl(text)]");
}
"""


def dgram(path: Path, payload: bytes, timeout: float = 3.0) -> bytes | None:
    # short: a unix socket path has 107 bytes, and pytest-xdist's tmp_path is 10 longer
    client = path.parent / f"c{os.getpid()}-{threading.get_native_id()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(client))
        try:
            s.settimeout(timeout)
            s.sendto(payload, str(path))
            try:
                return s.recv(1 << 20)
            except TimeoutError:
                return None
        finally:
            client.unlink()


def fifo(path: Path, request: dict[str, object], timeout: float = 3.0,
         name: str = "reply_fifo") -> bytes:
    """Write a request with a reply_name, read the answer from that FIFO (opened before the
    request is sent, so the server finds a reader) until the server closes it."""
    reply = path.parent / name
    if reply.exists():
        reply.unlink()
    os.mkfifo(reply)
    fd = os.open(reply, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with open(path, "wb") as fh:
            fh.write(json.dumps(dict(request, reply_name=name)).encode() + b"\n")
        data, deadline, seen_writer = b"", time.monotonic() + timeout, False
        while time.monotonic() < deadline:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                data += chunk
                seen_writer = True
            elif seen_writer:
                break  # the server closed its end: the answer is complete
            else:
                time.sleep(0.01)  # no writer yet: EOF is reported until one opens
        return data
    finally:
        os.close(fd)
        reply.unlink()


def shape(answer: bytes) -> str:
    """The answer with the server's own version text blanked."""
    return re.sub(rb'"result":\t"[^"]*"', b'"result":\t"..."', answer).decode()


@pytest.mark.e2e
@pytest.mark.skipif(not kamailio_available("jsonrpcs.so"), reason="Kamailio 5.6 is not installed")
def test_fifo_and_datagram_answers_match_kamailio(tmp_path: Path) -> None:
    requests = [
        b'{"jsonrpc": "2.0", "method": "core.version", "id": 1}',
        b'{"jsonrpc": "2.0", "method": "no.such.command", "id": 7}',
        b'{"jsonrpc": "2.0", "method": "core.version"}',
        b'{"jsonrpc": "2.0", "method": "core.version", "id": "abc"}',
    ]
    with side_by_side(CFG, tmp_path) as pair:
        results = {}
        for who in ("kemi", "kamailio"):
            d = tmp_path / who
            results[who] = [shape(dgram(d / "rpc.sock", r) or b"(none)") for r in requests]
            results[who].append(dgram(d / "rpc.sock", b"garbage", timeout=0.5))
            version = {"jsonrpc": "2.0", "method": "core.version", "id": 3}
            results[who].append(shape(fifo(d / "rpc.fifo", version)))
            results[who].append(fifo(d / "rpc.fifo", version, timeout=0.5, name="a.fifo"))
        ours, theirs = pair.both([request_text()])
    assert results["kemi"] == results["kamailio"]
    assert results["kemi"][1] == ('{\n\t"jsonrpc":\t"2.0",\n\t"error":\t{\n\t\t"code":\t500,\n'
                                  '\t\t"message":\t"Method Not Found"\n\t},\n\t"id":\t7\n}')
    assert results["kemi"][4] is None  # no answer to what is not JSON
    assert results["kemi"][6] == b""  # a reply FIFO name with a dot is refused
    # $jsonrpl after jsonrpc_exec
    assert ours == theirs and ours[0].status == "SIP/2.0 200 [500][Method Not Found]"


def test_pretty_layout_is_cjsons() -> None:
    doc = {"jsonrpc": "2.0", "result": [{"A": 1, "B": "x"}, {}], "id": 1}
    assert pretty(doc) == ('{\n\t"jsonrpc":\t"2.0",\n\t"result":\t[{\n\t\t\t"A":\t1,\n'
                           '\t\t\t"B":\t"x"\n\t\t}, {\n\t\t}],\n\t"id":\t1\n}')


def test_fifo_stream_is_split_into_documents() -> None:
    docs, rest = split_documents(b'{"a": 1}\n{"b": "}"}  {"c"')
    assert docs == [b'{"a": 1}', b'{"b": "}"}'] and rest == b'{"c"'
    docs, rest = split_documents(b'not json\n{"d": 2}\n')
    assert docs == [b'{"d": 2}'] and rest == b""
