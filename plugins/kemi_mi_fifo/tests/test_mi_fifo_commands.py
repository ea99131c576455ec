"""mi_fifo: both request forms reach the RPC commands and answer on the reply FIFO."""

from __future__ import annotations

import json
import os
from pathlib import Path

import kemi_mi_fifo
from kemi_core.testing import offline_core


def _server(tmp_path: Path) -> kemi_mi_fifo.FifoServer:
    core, _ = offline_core(("mi_fifo", kemi_mi_fifo),
                           params={("mi_fifo", "fifo_name"): str(tmp_path / "kemi_fifo"),
                                   ("mi_fifo", "reply_dir"): str(tmp_path)})
    assert not (tmp_path / "kemi_fifo").exists()  # made when the main process serves it
    server = core.require("mi_fifo", kemi_mi_fifo.FifoServer)
    server.create()
    assert (tmp_path / "kemi_fifo").is_fifo()
    return server


def _reply_fifo(path: Path) -> int:
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def _write(server: kemi_mi_fifo.FifoServer, data: bytes) -> None:
    """What a client does: write into the FIFO; then the loop would call _readable."""
    fd = os.open(server.path, os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, data)
    os.close(fd)
    server._readable()


def test_classic_mi_form(tmp_path: Path) -> None:
    server = _server(tmp_path)
    fd = _reply_fifo(tmp_path / "rpl")
    server.fd = os.open(server.path, os.O_RDWR | os.O_NONBLOCK)
    _write(server, b":core.version:rpl\n\n")
    out = os.read(fd, 4096).decode()
    assert out.startswith("200 OK\nkemi ")
    _write(server, b":no.such:rpl\n\n")
    assert os.read(fd, 4096).decode().startswith("500 command no.such not found")


def test_jsonrpc_form(tmp_path: Path) -> None:
    server = _server(tmp_path)
    fd = _reply_fifo(tmp_path / "jrpl")
    server.fd = os.open(server.path, os.O_RDWR | os.O_NONBLOCK)
    _write(server, json.dumps({"jsonrpc": "2.0", "id": 7, "method": "system.listMethods",
                               "reply_name": "jrpl"}).encode() + b"\n")
    answer = json.loads(os.read(fd, 65536))
    assert answer["id"] == 7 and "core.version" in answer["result"]
