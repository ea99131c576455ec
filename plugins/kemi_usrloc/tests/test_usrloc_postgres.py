"""usrloc db_mode 3 on PostgreSQL: two kemi servers share one location table."""

from __future__ import annotations

from pathlib import Path

from kemi_core.testing import KemiProcess, PostgresServer, free_port, wait_until
from kemi_registrar.testing import RegUA
from kemi_usrloc.testing import db_init, lookup_cfg


def test_two_servers_share_registrations(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    db_init(url)
    servers = []
    try:
        for name in ("a", "b"):
            work = tmp_path / name
            work.mkdir()
            port = free_port()
            (work / "kamailio.cfg").write_text(lookup_cfg(port, url, 3, interval=1))
            servers.append((KemiProcess(work / "kamailio.cfg", work).start(), port))
        (a, port_a), (b, port_b) = servers
        with RegUA(port_a) as ua, RegUA(port_b) as ub:
            contact = f"sip:erin@127.0.0.1:{ua.port}"
            reply = ua.register("erin", [f"<{contact}>;expires=4"])
            assert reply is not None and reply.status == 200
            found = ub.request("OPTIONS", "erin")
            assert found is not None
            assert (found.header("X-RC"), found.header("X-RU")) == ("1", contact)
            looked = b.rpc("ul.lookup", "location", "erin")["Contacts"][0]["Contact"]
            assert looked["Address"] == contact and 0 < looked["Expires"] <= 4

            def gone() -> bool:
                r = ub.request("OPTIONS", "erin")
                return r is not None and r.header("X-RC") == "-1"

            wait_until(gone, 15, "erin's registration to expire on both servers")
            wait_until(lambda: not b.rpc("ul.dump", "brief")["Domains"][0]["Domain"]["AoRs"],
                       15, "the expired row to be deleted by a timer")
    finally:
        for proc, _ in servers:
            proc.stop()
