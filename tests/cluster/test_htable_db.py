"""htable's database sharing as Kamailio offers it, on kemi and on Kamailio 5.6 with the same
config: a table with ``dbtable`` on the cluster's PostgreSQL is each node's own while it runs
(items are not pushed to other nodes: that is what Redis is for); ``htable.store`` on one node
writes it to the table, ``htable.reload`` on another reads it. (With ``dbmode=1`` kemi also
writes it back when the node stops; Kamailio 5.6 stopped by SIGTERM was seen not to.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import UdpClient, request
from kemi_core.testing.cluster import kamailio_cluster_available, location_database
from kemi_core.testing.kamailio import kamailio_available

REASON = kamailio_cluster_available() or (
    None if kamailio_available("htable.so") else "Kamailio's htable is not installed")
ENGINES = ["kemi", pytest.param("kamailio", marks=pytest.mark.skipif(REASON is not None,
                                                                      reason=REASON or ""))]


def ask(node: Any, header: str) -> str:
    with UdpClient() as udp:
        udp.send(request("OPTIONS", f"sip:h@{node.address}", udp.port,
                         extra=f"{header}\r\n"), node.port, node.ip)
        data = udp.recv_final(5)
    assert data is not None, f"no answer from {node.name}"
    return data.split(b"\r\n", 1)[0].decode().split(" ", 2)[2]


@pytest.mark.parametrize("engine", ENGINES)
def test_table_written_by_one_node_read_by_another(engine: str, make_node: Any,
                                                   postgres_server: Any, tmp_path: Path) -> None:
    url = location_database(postgres_server)
    a = make_node("a", engine, "127.0.0.2", "htable", db_url=url).start()
    b = make_node("b", engine, "127.0.0.3", "htable", db_url=url).start()
    assert ask(a, "X-Set: alice=sip:alice@10.0.0.1") == "Stored"
    assert ask(a, "X-Get: alice") == "Value sip:alice@10.0.0.1"
    assert ask(b, "X-Get: alice") == "Value nil"  # each node's table is its own
    assert "stored" in a.kamcmd("htable.store", "shared")
    answer = b.kamcmd("htable.reload", "shared")
    assert "error" not in answer.lower(), answer
    assert ask(b, "X-Get: alice") == "Value sip:alice@10.0.0.1"
