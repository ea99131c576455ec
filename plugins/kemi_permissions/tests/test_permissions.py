"""permissions: address and trusted matching (sans-IO), and a real server with two workers
seeing a reload of the address table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kemi_auth.testing import DigestUA
from kemi_core.testing import KemiProcess, db_init, free_port
from kemi_permissions.addresses import AddressRow, AddressTable, InvalidRecord, make_row
from kemi_permissions.cache import read_address_file
from kemi_permissions.trusted import TrustedRow, TrustedTable


def test_address_matching() -> None:
    t = AddressTable([AddressRow(1, "10.0.0.1", 32, 0, "a"), AddressRow(1, "10.1.0.0", 16, 5060, None),
                      AddressRow(2, "10.0.0.1", 0, 5070, "b"), AddressRow(3, "gw.example.com", 32, 0, None),
                      AddressRow(4, "2001:db8::", 32, 0, None)])
    assert t.find("10.0.0.1", 1) == t.find("10.0.0.1", 9) and t.find("10.0.0.1", 1).tag == "a"
    assert t.find("10.0.0.1", 5070, 2).tag == "b" and t.find("10.0.0.1", 5071, 2) is None
    assert t.find("10.1.2.3", 5060, 1) is not None and t.find("10.1.2.3", 5061, 1) is None
    assert t.find("gw.example.com", 1, 3) is not None and t.find("GW.example.com", 1, 3) is None
    assert t.find("2001:db8:0:0::9", 1, 4) is not None and t.find("2001:db9::1", 1, 4) is None
    assert t.find("10.0.0.1", 5070).grp == 1  # any group: the lowest exact match


def test_invalid_rows_and_the_address_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecord):
        make_row({"grp": 0, "ip_addr": "1.2.3.4", "mask": 32, "port": 0})
    with pytest.raises(InvalidRecord):
        make_row({"grp": 1, "ip_addr": "", "mask": 32, "port": 0})
    f = tmp_path / "address.list"
    f.write_text("# comment\n1 127.0.0.1 32 0 tag1\n1 10.0.0.10\n\n2 192.168.1.0 24 0 tag2 # x\n"
                 "3 [1:5ee::900d:c0de]\n")
    rows = read_address_file(str(f))
    assert [(r.grp, r.ip_addr, r.mask, r.port, r.tag) for r in rows] == [
        (1, "127.0.0.1", 32, 0, "tag1"), (1, "10.0.0.10", 0, 0, None),
        (2, "192.168.1.0", 24, 0, "tag2"), (3, "[1:5ee::900d:c0de]", 0, 0, None)]
    t = AddressTable(rows)
    assert t.find("1:5ee::900d:c0de", 5060, 3) is not None


def test_trusted_matching() -> None:
    t = TrustedTable([TrustedRow("10.0.0.1", "udp", "^sip:.*@a\\.com$", None, "low", 1),
                      TrustedRow("10.0.0.1", "any", None, "^sip:9", "high", 10),
                      TrustedRow("10.0.0.2", "none", None, None, None, 0)])
    assert [r.tag for r in t.matches("10.0.0.1", "udp", "sip:x@a.com", "sip:1@b", True)] == ["low"]
    assert [r.tag for r in t.matches("10.0.0.1", "tcp", "sip:x@a.com", "sip:9@b", True)] == ["high"]
    assert t.matches("10.0.0.2", "udp", "sip:x@a.com", "sip:9@b") == []


CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "db_sqlite.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "permissions.so"
modparam("permissions", "db_url", "sqlite://{db}")
modparam("permissions", "db_mode", 1)
modparam("permissions", "reload_delta", 1)
modparam("permissions", "peer_tag_avp", "$avp(tag)")
request_route {{
    append_to_reply("X-Pid: $pp\\r\\n");
    if (allow_source_address()) append_to_reply("X-Allowed: $avp(tag)\\r\\n");
    allow_source_address_group();
    $var(g) = $rc;
    append_to_reply("X-Group: $var(g)\\r\\n");
    if (allow_trusted()) append_to_reply("X-Trusted: yes\\r\\n");
    sl_send_reply("200", "OK");
}}
"""


def test_reload_seen_by_every_worker(tmp_path: Path) -> None:
    db = tmp_path / "perm.db"
    db_init(f"sqlite://{db}", "permissions")
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.7', 32, 0, 'peer')")
        con.execute("INSERT INTO trusted (src_ip, proto, from_pattern, tag) VALUES ('127.0.0.8', 'any', '^sip:alice@', 't')")
    port = free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, db=db))

    def answers(src: str) -> set[tuple[str | None, ...]]:
        seen: dict[str, tuple[str | None, ...]] = {}
        for _ in range(64):
            with DigestUA(port, src=src) as ua:
                r = ua.request("OPTIONS")
                assert r is not None
                seen[r.header("X-Pid") or ""] = (r.header("X-Allowed"), r.header("X-Group"),
                                                 r.header("X-Trusted"))
            if len(seen) == 2:
                return set(seen.values())
        raise AssertionError("one worker answered every request")

    with KemiProcess(cfg, tmp_path) as proc:
        assert answers("127.0.0.7") == {("peer", "1", None)}
        assert answers("127.0.0.9") == {(None, "-1", None)}
        assert answers("127.0.0.8") == {(None, "-1", "yes")}
        with sqlite3.connect(db) as con:
            con.execute("INSERT INTO address (grp, ip_addr, mask, port) VALUES (2, '127.0.0.0', 24, 0)")
            con.execute("DELETE FROM address WHERE ip_addr='127.0.0.7'")
        assert proc.rpc("permissions.addressReload") == "Reload OK"
        with pytest.raises(Exception, match="ongoing reload"):
            proc.rpc("permissions.addressReload")
        assert answers("127.0.0.7") == {(None, "2", None)}
        assert proc.rpc("permissions.subnetDump")[0]["item"]["mask"] == 24
        assert proc.rpc("permissions.addressDump") == []
