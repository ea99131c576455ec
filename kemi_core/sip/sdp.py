"""SDP bodies (RFC 4566) as the media modules need them: read addresses and ports, rewrite them.

``Sdp.parse(body)`` keeps every line as written (and its line ending), so a rewrite changes only
what it means to: ``to_bytes()`` of an untouched Sdp is the body it was made from. A body is cut
into the session part (up to the first ``m=``) and one :class:`Media` per ``m=`` line.
Nothing here checks that a body is valid SDP beyond what a rewrite needs: a line that is not
``x=...`` is kept as it is.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs


class SdpError(ValueError):
    """A body that is not SDP enough for the asked operation (no lines, a broken m= or c=)."""


@attrs.frozen
class Connection:
    """A ``c=`` line: ``IN IP4 192.0.2.1`` (a multicast ``/ttl`` suffix stays in ``extra``)."""

    nettype: str
    addrtype: str
    address: str
    extra: str = ""

    def __str__(self) -> str:
        return f"c={self.nettype} {self.addrtype} {self.address}{self.extra}"


@attrs.define
class Media:
    """One media description: the index of its ``m=`` line and of the line after its last."""

    start: int
    end: int
    media: str
    port: int
    port_count: str  # "/2" in "m=audio 5004/2 RTP/AVP 0", else ""
    proto: str
    formats: list[str]


def parse_connection(value: str) -> Connection:
    """The value of a c= line (without ``c=``)."""
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"bad c= line: c={value}")
    address, slash, rest = parts[2].partition("/")
    return Connection(parts[0], parts[1].upper(), address, slash + rest)


@attrs.define
class Sdp:
    """The lines of an SDP body (without their endings) and the ending they used."""

    lines: list[str]
    eol: str = "\r\n"
    #: the body ended with a line ending (almost always)
    final_eol: bool = True

    @classmethod
    def parse(cls, body: bytes | str) -> Sdp:
        text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
        if not text.strip():
            raise SdpError("empty SDP body")
        eol = "\r\n" if "\r\n" in text else "\n"
        final = text.endswith(("\n", "\r"))
        lines = text.replace("\r\n", "\n").split("\n")
        if final:
            lines.pop()
        return cls(lines, eol, final)

    def to_bytes(self) -> bytes:
        text = self.eol.join(self.lines) + (self.eol if self.final_eol else "")
        return text.encode("utf-8", "surrogateescape")

    # ---- reading -----------------------------------------------------------------------
    def media(self) -> list[Media]:
        """Every m= section, in order."""
        starts = [i for i, line in enumerate(self.lines) if line.startswith("m=")]
        out = []
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(self.lines)
            parts = self.lines[start][2:].split()
            if len(parts) < 3:
                raise SdpError(f"bad m= line: {self.lines[start]}")
            port_text, slash, count = parts[1].partition("/")
            if not port_text.isdigit():
                raise SdpError(f"bad port in m= line: {self.lines[start]}")
            out.append(Media(start, end, parts[0], int(port_text), slash + count, parts[2],
                             parts[3:]))
        return out

    def session_end(self) -> int:
        """Index of the first m= line (the number of lines when there is none)."""
        for i, line in enumerate(self.lines):
            if line.startswith("m="):
                return i
        return len(self.lines)

    def find(self, prefix: str, start: int = 0, end: int | None = None) -> Iterator[int]:
        """Indexes of the lines starting with ``prefix`` in ``[start, end)``."""
        stop = len(self.lines) if end is None else end
        for i in range(start, stop):
            if self.lines[i].startswith(prefix):
                yield i

    def session_connection(self) -> tuple[int, Connection] | None:
        """The session-level c= line (index, value), if any."""
        for i in self.find("c=", 0, self.session_end()):
            return i, parse_connection(self.lines[i][2:])
        return None

    def media_connection(self, m: Media) -> tuple[int, Connection] | None:
        """The c= line of one media section (index, value), if it has its own."""
        for i in self.find("c=", m.start + 1, m.end):
            return i, parse_connection(self.lines[i][2:])
        return None

    def connections(self) -> list[tuple[int, Connection]]:
        """Every c= line, session level first."""
        return [(i, parse_connection(self.lines[i][2:])) for i in self.find("c=")]

    def media_address(self, m: Media) -> Connection | None:
        """The connection a media section uses: its own c=, else the session's."""
        own = self.media_connection(m)
        if own is not None:
            return own[1]
        session = self.session_connection()
        return session[1] if session is not None else None

    def origin(self) -> tuple[int, list[str]] | None:
        """The o= line (index, its six fields)."""
        for i in self.find("o=", 0, self.session_end()):
            fields = self.lines[i][2:].split()
            if len(fields) == 6:
                return i, fields
        return None

    def has_line(self, line: str) -> bool:
        return line in self.lines

    # ---- rewriting -------------------------------------------------------------------------
    def set_connection(self, index: int, address: str, addrtype: str | None = None) -> None:
        """Give the c= line at ``index`` a new address (and IP4/IP6 type)."""
        old = parse_connection(self.lines[index][2:])
        new = attrs.evolve(old, address=address, addrtype=addrtype or old.addrtype)
        self.lines[index] = str(new)

    def set_origin_address(self, address: str, addrtype: str | None = None) -> bool:
        found = self.origin()
        if found is None:
            return False
        i, fields = found
        fields[5] = address
        if addrtype:
            fields[4] = addrtype
        self.lines[i] = "o=" + " ".join(fields)
        return True

    def set_media_port(self, m: Media, port: int) -> None:
        parts = self.lines[m.start][2:].split(" ")
        parts[1] = f"{port}{m.port_count}"
        self.lines[m.start] = "m=" + " ".join(parts)
        m.port = port

    def insert(self, index: int, line: str) -> None:
        """Insert a line before ``index`` (the media indexes after it move by one: read
        ``media()`` again)."""
        self.lines.insert(index, line)

    def append(self, line: str) -> None:
        self.lines.append(line)
