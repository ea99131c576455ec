"""The control socket in the main process: one listener per ctl address.

One socket speaks both protocols: a stream connection whose first byte is binrpc's magic
(``kamcmd``) is served binrpc, any other JSON-RPC 2.0 (one object per line, ``kemi rpc``);
datagram listeners (``udp:``, ``unixd:``) speak binrpc.

Safe on a shared machine: a unix socket file held by a live server is never taken over (the
second server refuses to start), a stale one (nobody listening) is replaced, and the file is
removed at exit if it is still ours. Stream connections are bounded: a JSON-RPC line longer
than ``max_line`` gets an error, a client silent for ``idle_timeout`` seconds is dropped.
Every stream connection starts in :meth:`ControlServer._connection`, which picks the protocol
from the first byte (:meth:`ControlServer.protocol_for`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Any, cast

from kemi_core.rpc.binrpc_server import BINRPC_FIRST, BinRpcDatagram, binrpc_stream
from kemi_core.rpc.ctl_address import CtlAddress, parse_ctl_address
from kemi_core.rpc.paths import CtlPathError, prepare_dir
from kemi_core.rpc.protocol import PARSE_ERROR, error_line, handle_line
from kemi_core.runtime.core import Core
from kemi_core.runtime.ratelimit import brief_error

#: parse_ctl_address is re-exported for the ctl module, which checks its addresses with it.
__all__ = ["ControlServer", "CtlInUse", "CtlPathError", "claim_path", "parse_ctl_address",
           "socket_path"]

log = logging.getLogger("kemi.rpc")

#: A request line longer than this gets an error (the rest of the line is skipped).
MAX_LINE = 1 << 20
#: A client that sends nothing (and reads nothing we send) for this long is dropped.
IDLE_TIMEOUT = 60.0
#: Pending connections the kernel queues while the main process is busy.
BACKLOG = 1024

#: Serves one stream connection: (first byte, reader, writer); returns when the client is done.
Protocol = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class CtlInUse(CtlPathError):
    """Another server answers on the control socket path."""


def socket_path(spec: str) -> str:
    """``unix:/path`` (Kamailio's ctl binrpc form) -> ``/path``; other forms are refused."""
    try:
        addr = parse_ctl_address(spec)
    except ValueError as exc:
        raise CtlPathError(str(exc)) from None
    if addr.proto != "unix":
        raise CtlPathError(f"control socket {spec!r}: not a unix stream socket")
    return addr.path


def claim_path(path: str, kind: int = socket.SOCK_STREAM) -> None:
    """Make ``path`` free for a new unix socket: refuse when a live server listens there,
    remove a stale socket file, refuse anything else that is not a socket."""
    prepare_dir(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise CtlPathError(f"control socket {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, kind) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.EPROTOTYPE):
                raise CtlPathError(f"control socket {path}: {exc.strerror or exc}") from None
        else:
            raise CtlInUse(f"control socket {path} is in use by a running server "
                           f"(stop it, or give this one another socket)")
    try:
        os.unlink(path)
        log.info("removed the stale control socket %s", path)
    except FileNotFoundError:
        pass


class _IdleReader:
    """A StreamReader whose reads give up after ``timeout`` seconds of silence."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self._reader = reader
        self._timeout = timeout

    async def read(self, n: int = -1) -> bytes:
        return await asyncio.wait_for(self._reader.read(n), self._timeout)


class ControlServer:
    """One listening control socket; ``close()`` stops it and removes its file."""

    def __init__(self, core: Core, address: CtlAddress | str, max_line: int = MAX_LINE,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.core = core
        try:
            self.address = parse_ctl_address(address) if isinstance(address, str) else address
        except ValueError as exc:
            raise CtlPathError(str(exc)) from None
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self._server: Any = None  # asyncio server, or the datagram transport
        self._socket: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    def claim(self) -> None:
        """Refuse now (before the workers are forked) if a live server holds our path."""
        if self.address.is_unix:
            claim_path(self.address.path, self._unix_kind())

    def _unix_kind(self) -> int:
        return socket.SOCK_DGRAM if self.address.proto == "unixd" else socket.SOCK_STREAM

    async def start(self) -> None:
        addr = self.address
        loop = asyncio.get_running_loop()
        try:
            sock = self._bind()
        except OSError as exc:
            raise CtlPathError(f"control socket {addr}: {exc.strerror or exc}") from None
        self._socket = sock
        if addr.proto in ("unix", "tcp"):
            sock.listen(BACKLOG)
            self._server = await asyncio.start_server(self._connection, sock=sock,
                                                      limit=self.max_line)
        else:
            self._server, _ = await loop.create_datagram_endpoint(
                lambda: BinRpcDatagram(self.core), sock=sock)
        log.info("control socket listening on %s", addr)

    def _bind(self) -> socket.socket:
        addr = self.address
        if addr.is_unix:
            claim_path(addr.path, self._unix_kind())
            sock = socket.socket(socket.AF_UNIX, self._unix_kind())
            try:
                sock.bind(addr.path)
                os.chmod(addr.path, 0o660)
                st = os.stat(addr.path)
            except OSError:
                sock.close()
                raise
            self._inode = (st.st_dev, st.st_ino)
        else:
            family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
            kind = socket.SOCK_STREAM if addr.proto == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(family, kind)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr.host, addr.port))
            except OSError:
                sock.close()
                raise
        sock.setblocking(False)
        return sock

    def forget(self) -> None:
        """In a forked child: let go of the inherited sockets without touching the file or the
        parent's event loop (a worker holding the listening socket would make the path look
        alive after the main process is gone)."""
        socks: list[Any] = [w.get_extra_info("socket") for w in self._clients]
        socks.append(self._socket)
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            for sock in socks:
                try:  # /dev/null in its place: a stale object closing "its" fd harms nothing
                    os.dup2(devnull, sock.fileno())
                except (OSError, AttributeError, ValueError):
                    pass
        finally:
            os.close(devnull)
        self._server = None
        self._socket = None
        self._clients.clear()
        self._inode = None

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._clients):
            writer.close()
        self._remove_file()

    def _remove_file(self) -> None:
        """Remove the socket file, unless another server has put its own there since."""
        if self._inode is None:
            return
        try:
            st = os.lstat(self.address.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.address.path)
        except OSError:
            pass
        self._inode = None

    # ---- stream connections -------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            timed = cast(asyncio.StreamReader, _IdleReader(reader, self.idle_timeout))
            first = await timed.read(1)
            if first:
                await self.protocol_for(first)(first, timed, writer)
        except (TimeoutError, ConnectionError, OSError):
            pass  # idle, reset or gone: nothing to answer
        except Exception as exc:  # a bug here must not become an unhandled task error
            log.error("control socket connection failed: %s", brief_error(exc))
        finally:
            self._clients.discard(writer)
            writer.close()

    def protocol_for(self, first: bytes) -> Protocol:
        """The protocol a connection speaks, told by its first byte."""
        if first == BINRPC_FIRST:
            return self._binrpc
        return self._json_lines

    async def _binrpc(self, first: bytes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await binrpc_stream(self.core, first, reader, writer)

    async def _json_lines(self, first: bytes, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        buf = bytearray(first)
        skipping = False  # inside a line that was too long: drop bytes up to its end
        while True:
            while True:
                end = buf.find(b"\n")
                if end < 0:
                    break
                line = bytes(buf[:end + 1])
                del buf[:end + 1]
                if skipping:
                    skipping = False
                elif line.strip():
                    writer.write(handle_line(self.core, line))
            if len(buf) > self.max_line:
                if not skipping:
                    writer.write(error_line(None, PARSE_ERROR,
                                            f"request line longer than {self.max_line} bytes"))
                skipping = True
                buf.clear()
            await asyncio.wait_for(writer.drain(), self.idle_timeout)
            chunk = await reader.read(65536)
            if not chunk:
                if buf.strip() and not skipping:  # a last request without its newline
                    writer.write(handle_line(self.core, bytes(buf)))
                    await asyncio.wait_for(writer.drain(), self.idle_timeout)
                return
            buf += chunk
