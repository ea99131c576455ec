"""ConnTable: a worker's stream connections by peer address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kemi_core.transport.conntable import ConnTable


@dataclass(eq=False)
class Conn:
    proto: str
    peer: tuple[str, int] = ("10.0.0.1", 5000)
    local: tuple[str, int] = ("127.0.0.1", 5060)


def _table(*conns: Conn) -> ConnTable:
    table = ConnTable()
    for conn in conns:
        table.add(conn)  # type: ignore[arg-type]
    return table


def test_newest_of_a_transport() -> None:
    old_ws, wss, new_ws = Conn("ws"), Conn("wss", local=("127.0.0.1", 5061)), Conn("ws")
    table = _table(old_ws, wss, new_ws)
    got: Any = table.newest("10.0.0.1", 5000, "ws")
    assert got is new_ws
    assert table.newest("10.0.0.1", 5000, "wss") is wss
    assert table.newest("10.0.0.1", 5000, "tls") is None
    assert table.newest("10.0.0.2", 5000, "ws") is None


def test_find_tries_the_transports_in_order() -> None:
    ws, wss = Conn("ws"), Conn("wss", local=("127.0.0.1", 5061))
    table = _table(ws, wss)
    assert table.find("10.0.0.1", 5000, ("wss", "ws")) is wss
    assert table.find("10.0.0.1", 5000, ("tls", "ws")) is ws
    assert table.find("10.0.0.1", 5000, ("tls",)) is None
    assert table.find("10.0.0.1", 5000) is wss
    assert table.find("10.0.0.1", 5000, local=("127.0.0.1", 5060)) is ws
