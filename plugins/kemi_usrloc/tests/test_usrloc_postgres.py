"""usrloc db_mode 3 on PostgreSQL: two kemi servers share one location table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kemi_core.testing import KemiProcess, PostgresServer, free_port, wait_until
from kemi_registrar.testing import RegUA

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "db_postgres.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_url", "{url}")
modparam("usrloc", "db_mode", 3)
modparam("usrloc", "timer_interval", 1)
modparam("registrar", "min_expires", 0)
request_route {{
    if (is_method("REGISTER")) {{
        save("location");
        exit;
    }}
    lookup("location");
    $var(rc) = $rc;
    append_to_reply("X-RC: $var(rc)\\r\\n");
    append_to_reply("X-RU: $ru\\r\\n");
    sl_send_reply("200", "Lookup");
}}
"""


def test_two_servers_share_registrations(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.new_database()
    kemi = Path(sys.executable).with_name("kemi")
    out = subprocess.run([str(kemi), "db", "init", url, "usrloc"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    servers = []
    try:
        for name in ("a", "b"):
            work = tmp_path / name
            work.mkdir()
            port = free_port()
            (work / "kamailio.cfg").write_text(CFG.format(port=port, url=url))
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
