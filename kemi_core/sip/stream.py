"""StreamBuffer: frames SIP messages on a TCP byte stream by Content-Length (RFC 3261 18.3).

Feed it whatever each read returned; it hands back every message completed so far. CRLF
keep-alives (RFC 5626 "\\r\\n\\r\\n" ping, "\\r\\n" pong) between messages are skipped. On a stream
Content-Length is mandatory: without it the framing is lost, so the buffer fails for good and
the connection should be closed; unless ``ParseLimits.accept_no_cl`` (Kamailio's
``tcp_accept_no_cl``), where such a message ends at its empty line, without a body.
"""

from __future__ import annotations

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.message import SipMsg
from kemi_core.sip.parser import (
    _NAME_CACHE,
    DEFAULT_LIMITS,
    ParseLimits,
    check_mandatory,
    content_length_of,
    parse_head,
)
from kemi_core.sip.syntax import METHODS, scan_message


class StreamBuffer:
    """Incremental framer for one connection. Not thread-safe (one per connection)."""

    __slots__ = ("_buf", "_limits", "_head", "_head_len", "_need", "_scan", "error",
                 "failed_data")

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits
        self._head: SipMsg | None = None  # parsed head of the message being completed
        self._head_len = 0  # bytes of that head including the empty line
        self._need = 0  # total bytes of that message
        self._scan = 0  # where to resume looking for the empty line (no quadratic rescans)
        #: why framing was lost (None while it is not); every later feed() raises it
        self.error: SipParseError | None = None
        #: the bytes the stream failed on (what was buffered then, at most one message's size)
        self.failed_data = b""

    @property
    def failed(self) -> bool:
        """True once framing is lost; every later feed() raises the same error."""
        return self.error is not None

    @property
    def pending(self) -> int:
        """Bytes buffered that are not yet part of a returned message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[SipMsg]:
        """Add bytes; return the messages completed by them, in order.

        Raises SipParseError when the stream cannot be framed or a message is malformed. When
        messages were completed before the bad one, they are returned first and the error is
        raised by the next feed() call (check ``failed``).
        """
        if self.error is not None:
            raise self.error
        out: list[SipMsg] = []
        limits = self._limits
        if (not self._buf and self._head is None and data.__class__ is bytes
                and scan_message is not None and not limits.require_mandatory):
            # The usual read: whole messages (several when they come fast), the first at its
            # start. Each is made in one compiled pass (as _scan_whole) without going through
            # the buffer; a read that ends with a whole message ends here.
            while True:
                msg = scan_message(data, _NAME_CACHE, METHODS, limits.max_message_size,
                                   limits.max_headers, limits.max_header_line)
                if msg is None or "content-length" not in msg._names:
                    break  # not whole, or unusual: the buffer's path decides
                out.append(msg)
                n = len(msg._buf)
                if n == len(data):
                    return out
                data = data[n:]
        self._buf += data
        try:
            self._drain(out)
        except SipParseError as exc:
            self.error = exc
            self.failed_data = bytes(self._buf[: self._limits.max_message_size])
            self._buf.clear()
            self._head = None
            self._scan = 0
            if not out:
                raise
        return out

    def _drain(self, out: list[SipMsg]) -> None:
        buf = self._buf
        limits = self._limits
        while True:
            if self._head is None:
                if buf[:1] in (b"\r", b"\n"):
                    n = len(buf) - len(buf.lstrip(b"\r\n"))
                    del buf[:n]
                if not buf:
                    return
                start = self._scan
                he = buf.find(b"\r\n\r\n", start)
                sep = 4
                lf = buf.find(b"\n\n", start, he if he >= 0 else len(buf))
                if lf >= 0 and (he < 0 or lf < he):
                    he, sep = lf, 2
                if he < 0:
                    if len(buf) > limits.max_message_size:
                        raise SipParseError(413, "Message Too Large")
                    self._scan = max(0, len(buf) - 3)
                    return
                self._scan = 0
                if sep == 4 and scan_message is not None:
                    whole = self._scan_whole(buf)
                    if whole is not None:
                        out.append(whole)
                        continue
                msg = parse_head(bytes(buf[: he + sep // 2]), limits)
                cl = content_length_of(msg)
                if cl is None:
                    if not limits.accept_no_cl:
                        raise SipParseError(400, "Missing Content-Length on a stream")
                    cl = 0
                self._head_len = he + sep
                self._need = he + sep + cl
                if self._need > limits.max_message_size:
                    raise SipParseError(413, "Message Too Large")
                self._head = msg
            if len(buf) < self._need:
                return
            msg = self._head
            data = bytes(buf[: self._need])
            del buf[: self._need]
            self._head = None
            check_mandatory(msg, limits)
            msg._body = data[self._head_len :]
            msg._buf = data
            out.append(msg)

    def _scan_whole(self, buf: bytearray) -> SipMsg | None:
        """The usual case in one compiled pass (_fast.c, as for a datagram): the buffer starts
        with a whole message that has a Content-Length (scan_message cuts it there); that
        message, taken off the buffer. None for anything else (a message not whole yet, no
        Content-Length, anything unusual): the Python path below decides, errors included."""
        limits = self._limits
        msg = scan_message(bytes(buf), _NAME_CACHE, METHODS, limits.max_message_size,
                           limits.max_headers, limits.max_header_line)
        if msg is None or "content-length" not in msg._names:
            return None
        check_mandatory(msg, limits)
        del buf[: len(msg._buf)]
        return msg  # type: ignore[no-any-return]

