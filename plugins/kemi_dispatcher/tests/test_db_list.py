"""Destination sets from the database (``db_url``, Kamailio's ``dispatcher`` table), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kemi_core.api import db
from kemi_dispatcher.testing import invite, write_config


def test_sets_from_the_dispatcher_table(kemi_router: Any, tmp_path: Path) -> None:
    path = tmp_path / "ds.db"
    url = f"sqlite:///{path}"
    database = db.open_standalone(url)
    database.create_database()
    db.create_tables(database, db.tables.tables_for(["dispatcher"]))
    database.insert_many("dispatcher", [
        {"setid": 1, "destination": "sip:127.0.0.2:5060", "flags": 0, "priority": 0,
         "attrs": "duid=a", "description": "proxy a"},
        {"setid": 1, "destination": "sip:127.0.0.3:5060", "flags": 8, "priority": 5,
         "attrs": "", "description": "proxy b"},
        {"setid": 2, "destination": "not a uri", "flags": 0, "priority": 0, "attrs": "",
         "description": "skipped (ds_load_mode 0)"},
    ])
    database.close()
    cfg = write_config(tmp_path, "", f'loadmodule "db_sqlite.so"\n'
                                     f'modparam("dispatcher", "db_url", "{url}")')
    router = kemi_router(cfg)
    listing = router.rpc("dispatcher.list")
    assert listing["NRSETS"] == 1
    dests = listing["RECORDS"]["SET"][0]["TARGETS"]["DEST"]
    assert [(d["URI"], d["FLAGS"], d["PRIORITY"]) for d in dests] == [
        ("sip:127.0.0.3:5060", "AP", 5), ("sip:127.0.0.2:5060", "AX", 0)]
    assert [f.dest for f in router.request(invite("db1", alg=8)).forwarded] == [
        "udp:127.0.0.3:5060"]
