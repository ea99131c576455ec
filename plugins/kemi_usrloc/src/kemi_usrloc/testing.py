"""Test helpers: a kamailio.cfg that saves REGISTERs and answers any other request with what
lookup() found (``X-RC``, ``X-RU``), and ``kemi db init`` for a database URL."""

from __future__ import annotations

from kemi_core.testing import db_init as core_db_init

LOOKUP_CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "{db_module}.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_url", "{url}")
modparam("usrloc", "db_mode", {mode})
modparam("usrloc", "timer_interval", {interval})
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


def lookup_cfg(port: int, url: str, mode: int, interval: int = 60) -> str:
    """LOOKUP_CFG for a database URL (its backend module loaded)."""
    db_module = "db_postgres" if url.startswith("postgres") else "db_sqlite"
    return LOOKUP_CFG.format(port=port, db_module=db_module, url=url, mode=mode,
                             interval=interval)


def db_init(url: str) -> None:
    """``kemi db init URL usrloc`` (the location table and its version row)."""
    core_db_init(url, "usrloc")
