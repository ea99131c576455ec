"""htable in a real kemi server with two workers: $sht from the native language, items seen by
every worker at once, expiry, the RPC commands, and a table loaded from and saved to SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_auth.testing import DigestUA
from kemi_core.sip import SipMsg
from kemi_core.testing import KemiProcess, db_init, free_port, wait_until

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "db_sqlite.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "htable.so"
modparam("htable", "db_url", "sqlite://{db}")
modparam("htable", "htable", "a=>size=8;")
modparam("htable", "htable", "short=>size=4;autoexpire=1;")
modparam("htable", "htable", "saved=>size=4;dbtable=htable;dbmode=1;")
request_route {{
    append_to_reply("X-Pid: $pp\\r\\n");
    $var(key) = $hdr(X-Key);
    if ($rU == "set") {{
        $sht(a=>$var(key)) = $hdr(X-Val);
    }} else if ($rU == "seti") {{
        $sht(a=>$var(key)) = 1;
    }} else if ($rU == "inc") {{
        $var(n) = $shtinc(a=>$var(key));
        append_to_reply("X-N: $var(n)\\r\\n");
    }} else if ($rU == "short") {{
        $sht(short=>$var(key)) = "x";
    }} else if ($rU == "match") {{
        if (sht_match_name("a", "sw", "$var(key)")) append_to_reply("X-Match: yes\\r\\n");
    }} else if ($rU == "rm") {{
        sht_rm_name_re("a=>^$var(key)");
    }} else if ($rU == "save") {{
        $sht(saved=>$var(key)) = $hdr(X-Val);
    }}
    append_to_reply("X-Val: $sht(a=>$var(key))\\r\\n");
    append_to_reply("X-Short: $sht(short=>$var(key))\\r\\n");
    append_to_reply("X-Saved: $sht(saved=>$var(key))\\r\\n");
    append_to_reply("X-Count: $shtcn(a=>.*)\\r\\n");
    sl_send_reply("200", "OK");
}}
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    db = tmp_path / "ht.db"
    db_init(f"sqlite://{db}", "htable")
    with sqlite3.connect(db) as con:
        con.executemany("INSERT INTO htable (key_name, key_type, value_type, key_value) "
                        "VALUES (?,?,?,?)", [("gw", 0, 0, "10.0.0.1"), ("limit", 0, 1, "30"),
                                             ("list", 1, 0, "one"), ("list", 1, 0, "two")])
    return db


@pytest.fixture
def server(tmp_path: Path, database: Path) -> Iterator[tuple[KemiProcess, int]]:
    port = free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, db=database))
    with KemiProcess(cfg, tmp_path) as proc:
        yield proc, port


def ask(port: int, what: str, key: str, value: str = "", not_pid: str = "") -> SipMsg:
    """MESSAGE sip:<what>@ with X-Key/X-Val, from fresh sockets until a worker other than
    ``not_pid`` answers (when given)."""
    for _ in range(64):
        with DigestUA(port) as ua:
            reply = ua.request("MESSAGE", ruri=f"sip:{what}@127.0.0.1",
                               extra=f"X-Key: {key}\r\nX-Val: {value}\r\n")
        assert reply is not None and reply.status == 200
        if not not_pid or reply.header("X-Pid") != not_pid:
            return reply
    raise AssertionError("every request landed on the same worker")


def test_items_are_shared_by_the_workers(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    setter = ask(port, "set", "k1", "hello")
    pid = setter.header("X-Pid") or ""
    assert setter.header("X-Val") == "hello"
    other = ask(port, "get", "k1", not_pid=pid)
    assert other.header("X-Val") == "hello"
    # counters: every worker increments the same item
    values = [ask(port, "inc", "n").header("X-N") for _ in range(3)]
    assert values == ["0", "0", "0"]  # no initval: $shtinc of an absent item is $null
    ask(port, "seti", "n")
    counted = sorted(int(ask(port, "inc", "n").header("X-N") or 0) for _ in range(6))
    assert counted == [2, 3, 4, 5, 6, 7]
    assert ask(port, "match", "k").header("X-Match") == "yes"
    assert ask(port, "get", "x").header("X-Count") == "2"
    ask(port, "rm", "k")
    assert ask(port, "get", "k1", not_pid=pid).header("X-Val") == "<null>"


def test_autoexpire_forgets_items(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    assert ask(port, "short", "s").header("X-Short") == "x"
    wait_until(lambda: ask(port, "get", "s").header("X-Short") == "<null>", 5.0,
               "the item to expire after autoexpire=1")


def test_rpc_commands(server: tuple[KemiProcess, int]) -> None:
    proc, port = server
    assert proc.rpc("htable.seti", "a", "x", "5") == "Ok. Key set to new value."
    assert proc.rpc("htable.sets", "a", "y", "text") == "Ok. Key set to new value."
    assert ask(port, "get", "x").header("X-Val") == "5"
    assert proc.rpc("htable.get", "a", "y")["item"]["value"] == "text"
    dump = proc.rpc("htable.dump", "a")
    assert sorted((e["slot"][0]["name"], e["slot"][0]["type"]) for e in dump) == [
        ("x", "int"), ("y", "str")]
    assert proc.rpc("htable.delete", "a", "x") == "Ok. Key deleted."
    with pytest.raises(Exception, match="Key not found"):
        proc.rpc("htable.delete", "a", "x")
    with pytest.raises(Exception, match="No such htable"):
        proc.rpc("htable.dump", "nope")
    names = {t["name"]: t for t in proc.rpc("htable.listTables")}
    assert names["short"]["expire"] == 1 and names["saved"]["dbtable"] == "htable"
    assert proc.rpc("htable.flush", "a") == "Ok. Htable flushed."
    assert ask(port, "get", "y").header("X-Val") == "<null>"


def test_loaded_from_and_saved_to_the_database(tmp_path: Path, database: Path,
                                               server: tuple[KemiProcess, int]) -> None:
    proc, port = server
    assert ask(port, "get", "gw").header("X-Saved") == "10.0.0.1"
    assert ask(port, "get", "limit").header("X-Saved") == "30"
    assert ask(port, "get", "list[1]").header("X-Saved") == "two"
    assert ask(port, "get", "list::size").header("X-Saved") == "2"
    ask(port, "save", "new", "value")
    with sqlite3.connect(database) as con:  # reload reads the table again (and drops "new")
        con.execute("UPDATE htable SET key_value='10.0.0.2' WHERE key_name='gw'")
    assert proc.rpc("htable.reload", "saved") == "Reload OK"
    assert ask(port, "get", "gw").header("X-Saved") == "10.0.0.2"
    assert ask(port, "get", "new").header("X-Saved") == "<null>"
    ask(port, "save", "kept", "yes")
    proc.stop()  # dbmode=1: written back at shutdown
    with sqlite3.connect(database) as con:
        rows = dict(con.execute("SELECT key_name, key_value FROM htable").fetchall())
    assert rows["kept"] == "yes" and rows["gw"] == "10.0.0.2" and rows["limit"] == "30"
    (tmp_path / "again").mkdir()
    with KemiProcess(proc.cfg, tmp_path / "again"):  # loaded again at start
        assert ask(port, "get", "kept").header("X-Saved") == "yes"
