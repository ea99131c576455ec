"""A worker's stream connections, found by their peer's address.

Two open connections may share a peer address: a client may use one source port for
connections to two of our listeners (Linux hands a local port out again when the destination
differs), say a ws:// and a wss:// one from the same browser. So a peer address maps to its
connections, a lookup says which transports it accepts (in order of preference), and only a
new connection on the same pair of addresses replaces an old one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.transport.stream import StreamConnection


class ConnTable:
    """Peer (ip, port) -> the worker's connections with that peer."""

    __slots__ = ("_by_peer", "_count")

    def __init__(self) -> None:
        self._by_peer: dict[tuple[str, int], list[StreamConnection]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def values(self) -> list[StreamConnection]:
        """Every connection (a new list: callers may close them while walking it)."""
        return [conn for conns in self._by_peer.values() for conn in conns]

    def add(self, conn: StreamConnection) -> None:
        self._by_peer.setdefault(conn.peer, []).append(conn)
        self._count += 1

    def remove(self, conn: StreamConnection) -> bool:
        """Forget ``conn``; False when it was not here."""
        conns = self._by_peer.get(conn.peer)
        if not conns:
            return False
        for i, other in enumerate(conns):
            if other is conn:
                del conns[i]
                if not conns:
                    del self._by_peer[conn.peer]
                self._count -= 1
                return True
        return False

    def holds(self, conn: StreamConnection) -> bool:
        return any(other is conn for other in self._by_peer.get(conn.peer, ()))

    def find(self, host: str, port: int, protos: tuple[str, ...] | None = None,
             local: tuple[str, int] | None = None) -> StreamConnection | None:
        """The connection with peer ``host:port``: the one on our address ``local`` when
        given; else the newest whose transport is the first of ``protos`` that one has (any
        transport when ``protos`` is None)."""
        conns = self._by_peer.get((host, port))
        if not conns:
            return None
        if local is not None:
            for conn in conns:
                if conn.local == local:
                    return conn
            return None
        if protos is None:
            return conns[-1]
        for proto in protos:
            found = self.newest(host, port, proto)
            if found is not None:
                return found
        return None

    def newest(self, host: str, port: int, proto: str) -> StreamConnection | None:
        """The newest connection with peer ``host:port`` over ``proto`` (``find`` with one
        transport, without the tuple: every stream send looks one up)."""
        conns = self._by_peer.get((host, port))
        if conns:
            for conn in reversed(conns):
                if conn.proto == proto:
                    return conn
        return None
