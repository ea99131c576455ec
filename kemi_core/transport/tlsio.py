"""TLS over memory buffers for one stream connection (Python's ``ssl``, sans-IO).

The connection feeds the bytes it read (``receive``) and gets back the plaintext; whatever
TLS has to send (handshake records, encrypted data, alerts) is taken with ``outgoing()`` and
written to the socket. Nothing here blocks: a handshake advances with each read, on the
worker's event loop, and its time is bounded by the connection's sweep (``handshake_timeout``).

The context is chosen per connection (the profile of the listen socket or of the next hop, as
it is after the last ``tls.reload``), which asyncio's own TLS transport cannot do.
"""

from __future__ import annotations

import ssl

#: The first byte of a TLS record carrying a handshake message (a ClientHello starts so).
HANDSHAKE_RECORD = 0x16

#: Most plaintext TLS may hand back from one read: a peer cannot make us buffer more at once.
MAX_READ = 256 * 1024


class TlsError(Exception):
    """The TLS session failed (handshake refused, bad record, not TLS at all)."""


class TlsSession:
    """One TLS session on memory BIOs (server or client side)."""

    __slots__ = ("obj", "_in", "_out", "established", "server_side", "_fresh", "peer_closed")

    def __init__(self, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.server_side = server_side
        self.obj = context.wrap_bio(self._in, self._out, server_side=server_side,
                                    server_hostname=server_hostname if not server_side else None)
        self.established = False
        self._fresh = True  # nothing received yet
        #: the peer sent its close_notify: it sends nothing more, and waits for ours
        self.peer_closed = False

    def start(self) -> None:
        """A client sends its ClientHello first (take it with ``outgoing()``)."""
        self._handshake()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes read from the socket; returns the plaintext they completed (b"" while
        the handshake runs). Raises TlsError when the session failed."""
        if self._fresh and data:
            self._fresh = False
            if self.server_side and data[0] != HANDSHAKE_RECORD:
                raise TlsError("not a TLS handshake (plaintext on a TLS port?)")
        self._in.write(data)
        if not self.established:
            if not self._handshake():
                return b""
            if not self._in.pending and not self.obj.pending():
                return b""  # the handshake took every byte: a read would only raise
        chunks: list[bytes] = []
        size = 0
        obj, incoming = self.obj, self._in  # read once: several records may have come
        while size < MAX_READ:
            try:
                chunk = obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the peer is done
                self.peer_closed = True
                break
            except ssl.SSLError as exc:
                raise TlsError(_reason(exc)) from exc
            if not chunk:  # how ssl reports a close_notify received
                self.peer_closed = True
                break
            chunks.append(chunk)
            size += len(chunk)
            if not incoming.pending and not obj.pending():
                break  # all read: another read would only raise SSLWantReadError
        return b"".join(chunks)

    def _handshake(self) -> bool:
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            raise TlsError(_reason(exc)) from exc
        self.established = True
        return True

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` (only once established); returns the records to write (what
        ``outgoing()`` gives next: taken here, a call less per message sent)."""
        try:
            self.obj.write(plaintext)
        except ssl.SSLError as exc:
            raise TlsError(_reason(exc)) from exc
        out = self._out
        return out.read() if out.pending else b""

    def outgoing(self) -> bytes:
        """Bytes TLS wants on the wire now (may be b"")."""
        return self._out.read() if self._out.pending else b""

    def close_notify(self) -> bytes:
        """The close_notify alert to send before closing (b"" when there is none)."""
        if not self.established:
            return b""
        try:
            self.obj.unwrap()
        except (ssl.SSLError, ValueError):
            pass
        return self.outgoing()

    # ---- what the session negotiated ($tls_* variables, tls.list) -----------------------------
    @property
    def version(self) -> str:
        return self.obj.version() or ""

    @property
    def cipher(self) -> tuple[str, str, int] | None:
        return self.obj.cipher()

    @property
    def server_name(self) -> str:
        """The SNI the client sent (server side) or asked for (client side)."""
        return getattr(self.obj, "kemi_sni", None) or (self.obj.server_hostname or "")

    def peer_der(self) -> bytes | None:
        """The peer's certificate (DER), verified or not, None when it sent none."""
        try:
            return self.obj.getpeercert(binary_form=True)
        except (ValueError, ssl.SSLError):
            return None


def _reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")
