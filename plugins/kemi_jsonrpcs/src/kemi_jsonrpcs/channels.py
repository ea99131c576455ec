"""The FIFO and datagram transports of jsonrpcs, served by the main process's event loop.

FIFO: JSON-RPC documents written to ``fifo_name``; each carries ``reply_name``, the FIFO (in
``fifo_reply_dir``; a plain name, no '/' or '.') the answer is written to. Datagram: one document per
datagram on a unix socket (or ``udp:host:port``); the answer goes back to the sender's address.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from kemi_core.api import ModuleError
from kemi_jsonrpcs.protocol import parse_request, split_documents

log = logging.getLogger("kemi.jsonrpcs")

#: Answer one request object: the response bytes.
Responder = Callable[[dict[str, Any]], bytes]
_MAX_FIFO_BUFFER = 1 << 20
#: A client that stops reading its reply FIFO may hold the main loop this long at most.
_REPLY_TIMEOUT = 2.0


def _write_bounded(fd: int, data: bytes, timeout: float) -> None:
    """Write all of ``data`` to the non-blocking ``fd``, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError from None
            select.select([], [fd], [], left)


def make_fifo(path: str, mode: int) -> None:
    """Create the listening FIFO (replacing a stale one); a clear error when impossible."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.lexists(path):
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                raise ModuleError(f"jsonrpcs: {path} exists and is not a FIFO")
            os.unlink(path)
        os.mkfifo(path, mode)
        os.chmod(path, mode)
    except OSError as exc:
        raise ModuleError(f"jsonrpcs: cannot create FIFO {path}: {exc.strerror}")


class FifoChannel:
    def __init__(self, path: str, reply_dir: str, respond: Responder) -> None:
        self.path = path
        self.reply_dir = reply_dir
        self.respond = respond
        self.buffer = b""
        self.fd = -1
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # O_RDWR keeps a writer open ourselves: the FIFO never reports EOF between clients.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        loop.add_reader(self.fd, self._readable)
        log.info("jsonrpcs: FIFO transport listening on %s", self.path)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self.buffer += chunk
        docs, self.buffer = split_documents(self.buffer)
        if len(self.buffer) > _MAX_FIFO_BUFFER:
            log.error("jsonrpcs: FIFO input of %d bytes is no document: dropped", len(self.buffer))
            self.buffer = b""
        for doc in docs:
            try:
                self._answer(doc)
            except Exception:  # one bad request never stops the channel
                log.exception("jsonrpcs: FIFO request failed")

    def _answer(self, doc: bytes) -> None:
        request = parse_request(doc)
        if request is None:
            log.warning("jsonrpcs: FIFO input is no JSON-RPC request: %r", doc[:80])
            return
        reply_name = request.get("reply_name")
        if not isinstance(reply_name, str) or not reply_name:
            log.error("jsonrpcs: FIFO request without reply_name: not answered")
            return
        self._write_reply(reply_name, self.respond(request))

    def _write_reply(self, name: str, data: bytes, deadline: float | None = None) -> None:
        if "/" in name or "." in name:  # as Kamailio: a plain name inside fifo_reply_dir
            log.error("jsonrpcs: forbidden reply FIFO name %r", name)
            return
        path = os.path.join(self.reply_dir, name)
        if deadline is None:
            deadline = time.monotonic() + _REPLY_TIMEOUT
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            # ENXIO: the client has not opened its end for reading yet; try again shortly.
            if exc.errno == errno.ENXIO and self.loop is not None and time.monotonic() < deadline:
                self.loop.call_later(0.02, self._write_reply, name, data, deadline)
                return
            log.warning("jsonrpcs: cannot open reply FIFO %s: %s", path, exc.strerror)
            return
        try:
            _write_bounded(fd, data, _REPLY_TIMEOUT)
        except TimeoutError:
            log.warning("jsonrpcs: reply FIFO %s not read in %.0f s: answer cut", path,
                        _REPLY_TIMEOUT)
        except OSError as exc:
            log.warning("jsonrpcs: writing reply FIFO %s: %s", path, exc.strerror)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def datagram_socket(spec: str, mode: int) -> socket.socket:
    """Bind the datagram listener: ``udp:host:port`` / ``udp6:...`` or a unix socket path."""
    low = spec.lower()
    if low.startswith(("udp:", "udp4:", "udp6:")):
        host, _, port = spec.split(":", 1)[1].rpartition(":")
        family = socket.AF_INET6 if low.startswith("udp6:") or ":" in host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host.strip("[]"), int(port)))
        except (OSError, ValueError) as exc:
            sock.close()
            raise ModuleError(f"jsonrpcs: cannot bind datagram socket {spec}: {exc}")
        return sock
    path = spec[5:] if low.startswith("unix:") else spec
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise ModuleError(f"jsonrpcs: {path} exists and is not a socket")
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        os.chmod(path, mode)
    except OSError as exc:
        raise ModuleError(f"jsonrpcs: cannot create datagram socket {path}: {exc.strerror}")
    return sock


class DatagramChannel:
    def __init__(self, sock: socket.socket, name: str, respond: Responder) -> None:
        self.sock = sock
        self.name = name
        self.respond = respond
        sock.setblocking(False)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)
        log.info("jsonrpcs: datagram transport listening on %s", self.name)

    def _readable(self) -> None:
        for _ in range(64):  # bounded: other channels get their turn
            try:
                data, addr = self.sock.recvfrom(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("jsonrpcs: datagram receive failed: %s", exc)
                return
            request = parse_request(data)
            if request is None:
                log.warning("jsonrpcs: datagram is no JSON-RPC request: %r", data[:80])
                continue
            if not addr:
                log.warning("jsonrpcs: datagram from an unbound socket: cannot answer")
                continue
            try:
                self.sock.sendto(self.respond(request), addr)
            except OSError as exc:
                log.warning("jsonrpcs: cannot send the answer to %s: %s", addr, exc)
            except Exception:
                log.exception("jsonrpcs: datagram request failed")

    def close(self) -> None:
        self.sock.close()
