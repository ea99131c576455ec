"""Expiry of registrations in a location table shared by two nodes (usrloc db_mode 3), on kemi
and on Kamailio 5.6 with the same config. Kamailio's rule, observed with two of its nodes on one
PostgreSQL table: each node's timer deletes the expired rows (the delete is idempotent, so each
row goes once, by whichever node comes first); with ``server_id_filter`` a node deletes only the
rows saved with its own ``server_id``, so a node that is down leaves its rows to its return.

The test registers bob through A, stops A, then registers dave through B with the same short
expiry: once dave's row is gone, B's timer has run after bob's expiry too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import free_port, wait_until
from kemi_core.testing.cluster import kamailio_cluster_available, location_database
from kemi_core.testing.sipp import run_sipp

SCENARIOS = Path(__file__).parent / "scenarios"
REASON = kamailio_cluster_available()
ENGINES = ["kemi", pytest.param("kamailio", marks=pytest.mark.skipif(REASON is not None,
                                                                      reason=REASON or ""))]


def register(node: Any, workdir: Path, user: str, expires: int) -> None:
    res = run_sipp(node.address, workdir, scenario=SCENARIOS / "register.xml", calls=1,
                   extra=["-s", user, "-key", "contact", f"sip:{user}@127.0.0.1:{free_port()}",
                          "-key", "expires", str(expires)], name=f"reg-{user}-{node.name}")
    assert res.successful == 1, res.stdout[-2000:]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("filter_", [0, 1])
def test_expired_rows_go_once(engine: str, filter_: int, make_node: Any, postgres_server: Any,
                              tmp_path: Path) -> None:
    url = location_database(postgres_server)
    dbname = url.rsplit("/", 1)[1]

    def rows() -> list[tuple[str, int]]:
        out = postgres_server.psql(dbname, "SELECT username, server_id FROM location "
                                           "ORDER BY username")
        return [(u, int(s)) for u, s in (line.split("|") for line in out.split())]

    a = make_node("a", engine, "127.0.0.2", "expiry", scripts=("proxy",), db_url=url, server_id=1,
                  filter=filter_).start()
    b = make_node("b", engine, "127.0.0.3", "expiry", scripts=("proxy",), db_url=url, server_id=2,
                  filter=filter_).start()
    register(a, tmp_path, "bob", 5)
    assert rows() == [("bob", 1)]
    a.stop()
    register(b, tmp_path, "dave", 5)
    wait_until(lambda: "dave" not in dict(rows()), 15, lambda: f"B expires dave: {rows()}")
    if filter_:
        assert rows() == [("bob", 1)], "with server_id_filter B leaves A's rows alone"
        a.start()
        wait_until(lambda: rows() == [], 15, lambda: f"A back, expires bob: {rows()}")
    else:
        assert rows() == [], "without server_id_filter B expires A's rows too"
