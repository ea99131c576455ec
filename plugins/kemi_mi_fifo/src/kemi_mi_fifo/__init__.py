"""mi_fifo.so: a FIFO control channel running the same commands as the control socket.

Two request forms are read from ``fifo_name`` (one request at a time):

* Kamailio's classic MI FIFO form: ``:command:reply_fifo\\n`` then one argument per line, ended
  by an empty line. The answer (``200 OK`` and the result, or ``500 <error>``) is written to the
  FIFO ``reply_fifo`` in ``reply_dir``.
* A JSON-RPC 2.0 request on one line with a ``reply_name`` member (Kamailio's jsonrpcs FIFO form);
  the JSON answer goes to ``reply_dir/reply_name``.

The FIFO is served by the main process, beside the control socket. A relative ``fifo_name``
(the default is ``kemi_fifo``) goes in kemi's runtime directory, the control socket's (as
Kamailio puts it in its rundir): /run/kemi as root, else a directory of the user's own. A FIFO
another running server reads is never taken over; the FIFO is removed at exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from typing import Any

from kemi_core.api import (
    Core,
    KemiError,
    ModuleError,
    hookimpl,
    prepare_runtime_path,
    runtime_path,
)

log = logging.getLogger("kemi.mi_fifo")

MODULE = "mi_fifo"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "fifo_name", str, "kemi_fifo",
                       doc="FIFO file (relative: in kemi's runtime directory)")
    core.declare_param(MODULE, "fifo_mode", int, 0o660)
    core.declare_param(MODULE, "reply_dir", str, "/tmp/")
    core.declare_param(MODULE, "fifo_group", str, "")
    core.declare_param(MODULE, "fifo_user", str, "")
    core.declare_param(MODULE, "reply_indent", str, "\t")


@hookimpl
def mod_init(core: Core) -> None:
    # Checked here so a bad path stops the start; the FIFO itself is made when the main process
    # starts serving it (attach), so loading the config (kemi check, kemi_router tests) never
    # replaces the FIFO of a server already running.
    path = runtime_path(str(core.modparam(MODULE, "fifo_name")))
    try:
        prepare_runtime_path(path)
        if os.path.exists(path) and not stat.S_ISFIFO(os.stat(path).st_mode):
            raise ModuleError(f"mi_fifo: {path} exists and is not a FIFO")
    except KemiError as exc:
        raise ModuleError(f"mi_fifo: cannot create FIFO {path}: {exc}")
    except OSError as exc:
        raise ModuleError(f"mi_fifo: cannot create FIFO {path}: {exc.strerror}")
    if not os.access(os.path.dirname(path) or ".", os.W_OK):
        raise ModuleError(f"mi_fifo: cannot create FIFO {path}: its directory is not writable")
    server = FifoServer(core, path, str(core.modparam(MODULE, "reply_dir")),
                        int(core.modparam(MODULE, "fifo_mode")))
    core.main_loop_hooks.append(server.attach)
    core.provide("mi_fifo", server)


@hookimpl
def mod_destroy(core: Core) -> None:
    server = core.service("mi_fifo", FifoServer)
    if server is not None:
        server.close()


class FifoServer:
    def __init__(self, core: Core, path: str, reply_dir: str, mode: int = 0o660) -> None:
        self.core = core
        self.path = path
        self.reply_dir = reply_dir
        self.mode = mode
        self.buffer = b""
        self.fd = -1
        self.inode = -1
        self.loop: asyncio.AbstractEventLoop | None = None

    def create(self) -> None:
        """(Re)make the FIFO: an old one left by a previous run is replaced, one that a running
        server reads (Kamailio or another kemi) is not."""
        if os.path.exists(self.path):
            if _has_reader(self.path):
                raise FileExistsError(f"{self.path} is read by a running server")
            os.unlink(self.path)
        os.mkfifo(self.path, self.mode)
        self.inode = os.stat(self.path).st_ino

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.create()
        except OSError as exc:
            log.error("mi_fifo: cannot create FIFO %s: %s", self.path, exc.strerror or exc)
            return
        # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF between clients.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self.loop = loop
        loop.add_reader(self.fd, self._readable)
        log.info("mi_fifo: listening on %s", self.path)

    def close(self) -> None:
        """Stop serving and remove the FIFO, if it is still the one made here."""
        if self.fd < 0:
            return
        if self.loop is not None:
            self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self.buffer += chunk
        while True:
            request, rest = self._split_one(self.buffer)
            if request is None:
                break
            self.buffer = rest
            try:
                self._answer(request)
            except Exception:  # one bad request never stops the channel
                log.exception("mi_fifo: request failed")

    @staticmethod
    def _split_one(buf: bytes) -> tuple[bytes | None, bytes]:
        """(one complete request, the rest), or (None, buf) while a request is incomplete.
        A line that starts neither form is returned alone and ignored."""
        if buf.startswith(b":"):
            end = buf.find(b"\n\n")
            return (buf[:end], buf[end + 2:]) if end >= 0 else (None, buf)
        line, sep, rest = buf.partition(b"\n")
        return (line, rest) if sep else (None, buf)

    def _answer(self, request: bytes) -> None:
        if request.lstrip().startswith(b"{"):
            obj = json.loads(request)
            reply_name = obj.pop("reply_name", None)
            answer = self.core.rpc_request(json.dumps(obj).encode())
            if reply_name:
                self._write_reply(reply_name, answer)
            return
        if not request.startswith(b":"):
            if request.strip():
                log.warning("mi_fifo: ignored a line that is no request: %r", request[:60])
            return
        header, *args = request.decode("utf-8", "replace").split("\n")
        _, command, reply_name = (header.split(":", 2) + ["", ""])[:3]
        line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": command,
                           "params": [_arg(a) for a in args if a != ""]}).encode()
        result = json.loads(self.core.rpc_request(line))
        if "error" in result:
            text = f"500 {result['error']['message']}\n\n"
        else:
            body = result["result"]
            text = "200 OK\n" + (body if isinstance(body, str) else json.dumps(body, indent=1)) + "\n\n"
        if reply_name:
            self._write_reply(reply_name, text.encode())

    def _write_reply(self, name: str, data: bytes) -> None:
        path = name if name.startswith("/") else os.path.join(self.reply_dir, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            log.warning("mi_fifo: cannot open reply FIFO %s: %s", path, exc.strerror)
            return
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _arg(text: str) -> Any:
    return int(text) if text.lstrip("-").isdigit() else text


def _has_reader(path: str) -> bool:
    """Whether a process has ``path`` (a FIFO) open for reading: opening it to write without
    blocking succeeds only then (ENXIO otherwise). Nothing is written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True
