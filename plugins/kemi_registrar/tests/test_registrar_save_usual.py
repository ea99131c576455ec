"""save()'s compiled usual case (kemi_registrar.usual, _fast's reg_save_usual) against save()'s
Python path: the same REGISTERs, random and edge cases, through the same config in a router
(one worker in this process), as built (the cfg's or KEMI's save() itself compiled too:
_fast's registrar_saver), with save()'s Python calling the compiled usual case, and with the
compiled call declining every request; the replies must be the same bytes, the location
records the same rows (and with usrloc's write-through on SQLite, the table's rows the same)."""

from __future__ import annotations

import importlib
import random
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from kemi_core.sip import reg_save_usual
from kemi_registrar.state import held
from kemi_usrloc import sync
from kemi_usrloc.domain import MemDomain
from kemi_usrloc.testing import db_init

#: the module (kemi_registrar.save is also the name of its function, in the package)
save_module = importlib.import_module("kemi_registrar.save")
registrar = importlib.import_module("kemi_registrar")

pytestmark = pytest.mark.skipif(reg_save_usual is None, reason="kemi_core.sip._fast is not built")

#: (usrloc's expiry timer off: with a database its batches are not in step with the router's
#: requests, so two runs could differ by when an expired contact goes; save() is compared)
CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
%(db)s
modparam("usrloc", "timer_interval", 1000000)
modparam("registrar", "min_expires", 0)
modparam("registrar", "max_contacts", 3)
request_route {
    if (!is_method("REGISTER")) {
        sl_send_reply("404", "Not here");
        exit;
    }
    if ($hdr(X-Save) == "mem") {
        save("location", "0x01");
    } else if ($hdr(X-Save) == "single") {
        save("location", "0x04");
    } else if ($hdr(X-Save) == "norange") {
        save("location", "0x08");
    } else if ($hdr(X-Save) == "later") {
        save("location", "0x02");
        reg_send_reply();
    } else if ($hdr(X-Save) == "other") {
        save("other");
    } else if ($hdr(X-Save) == "uri") {
        save("location", "0", "sip:fixed@127.0.0.1");
    } else if (!save("location")) {
        sl_reply_error();
    }
    exit;
}
"""
#: the same routes as a Python KEMI script (app_python3): KEMI's save() and save_uri()
KEMI_CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "app_python3.so"
%(db)s
modparam("usrloc", "timer_interval", 1000000)
modparam("registrar", "min_expires", 0)
modparam("registrar", "max_contacts", 3)
modparam("app_python3", "load", "%(script)s")
cfgengine "python"
"""
KEMI_SCRIPT = """
import KSR

FLAGS = {"mem": 1, "single": 4, "norange": 8}


class kamailio:
    def ksr_request_route(self, msg):
        if not KSR.is_REGISTER():
            KSR.sl.sl_send_reply(404, "Not here")
            return 1
        how = KSR.hdr.get("X-Save") or ""
        if how in FLAGS:
            KSR.registrar.save("location", FLAGS[how])
        elif how == "later":
            KSR.registrar.save("location", 2)
            KSR.registrar.reg_send_reply()
        elif how == "other":
            KSR.registrar.save("other", 0)
        elif how == "uri":
            KSR.registrar.save_uri("location", 0, "sip:fixed@127.0.0.1")
        elif KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()
        return 1


def mod_init():
    return kamailio()
"""
#: usrloc on SQLite with write-through (db_mode 1), in CFG's %(db)s
SQLITE = """loadmodule "db_sqlite.so"
modparam("usrloc", "db_mode", 1)
modparam("usrloc", "db_url", "sqlite://%s")"""

#: the wall clock both runs start at (their Date headers and expiry times the same)
WALL = 1_800_000_000.25
#: sl's To-tag: a random per-server part, then one of the request's
_TO_TAG = re.compile(rb"(\r\nTo: [^\r]*;tag=)[0-9a-f]+\.")

#: ("": a To without a user, the AOR "" as Kamailio keeps it: the compiled call declines it)
USERS = ("alice", "bob", "carol", "")
SAVES = ("", "", "", "", "mem", "single", "norange", "later", "other", "uri")


def _at(user: str) -> str:
    return f"{user}@" if user else ""


def _register(n: int, user: str, contacts: list[str], callid: str, cseq: int,
              extra: list[str]) -> str:
    lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n};rport",
             f"From: <sip:{_at(user)}127.0.0.1>;tag={n}", f"To: <sip:{_at(user)}127.0.0.1>",
             f"Call-ID: {callid}", f"CSeq: {cseq} REGISTER", "Max-Forwards: 70",
             *(f"Contact: {c}" for c in contacts), *extra, "User-Agent: usual test"]
    return "\r\n".join(lines) + "\r\n\r\n"


def _requests(seed: int, count: int) -> list[tuple[str, float]]:
    """(REGISTER text, seconds the clock moves before it): phones refreshing, mostly, with
    new bindings, removals, several contacts, stars, CSeq going back, other save() flags."""
    rnd = random.Random(seed)
    cseqs: dict[tuple[str, str], int] = {}
    out: list[tuple[str, float]] = []
    for n in range(count):
        user = rnd.choice(USERS)
        port = rnd.choice((5070,) * 8 + (5071, 5072))
        contact = f"<sip:{_at(user)}127.0.0.1:{port}>"
        shape = rnd.random()
        if shape < 0.03:
            contacts = ["*"]
        elif shape < 0.05:
            contacts = []
        elif shape < 0.08:
            contacts = [contact, f"<sip:{_at(user)}127.0.0.1:5080>;q=0.7"]
        elif shape < 0.11:
            contacts = [f"{contact};expires={rnd.choice((0, 30, 7200))}"]
        elif shape < 0.14:
            contacts = [f'{contact};+sip.instance="<urn:uuid:{user}>";reg-id=1']
        elif shape < 0.17:
            contacts = [f"{contact};q={rnd.choice(('0.1', '1', '2', 'x'))}"]
        else:
            contacts = [contact]
        callid = f"{user}-{rnd.choice((1, 1, 1, 2))}@test"
        cseq = cseqs.get((user, callid), 0) + rnd.choice((1, 1, 1, 1, 0, -1))
        cseqs[(user, callid)] = max(cseq, 1)
        extra = []
        expires = rnd.choice((None, None, 3600, 3600, 60, 0))
        if expires == 0 and contacts and contacts != ["*"] and rnd.random() < 0.7:
            expires = 3600  # (removals, but not too many)
        if contacts == ["*"]:
            expires = rnd.choice((0, 0, 60))
        if expires is not None:
            extra.append(f"Expires: {expires}")
        if rnd.random() < 0.2:
            extra.append("Allow: INVITE, ACK, BYE")
        save = rnd.choice(SAVES)
        if save:
            extra.append(f"X-Save: {save}")
        out.append((_register(n, user, contacts, callid, max(cseq, 1), extra),
                    rnd.choice((0, 0, 0, 0, 1, 30, 900))))
    return out


def _run(kemi_router: Any, work: Path, db: int, requests: list[tuple[str, float]],
         kemi: bool = False, frames: list[str] | None = None,
         ) -> tuple[list[list[bytes]], dict[str, list[tuple[Any, ...]]], tuple[int, int],
                    list[tuple[Any, ...]]]:
    """A new router (and database) for the requests: (replies, records, counters, rows);
    ``kemi``: the routes in KEMI_SCRIPT; ``frames`` gets the name of each Python frame of
    registrar's save functions the requests ran. ``db``: usrloc's db_mode on SQLite (0: none;
    2: write-back, flushed every 37 requests, so that the sync states change, and before the
    rows are read)."""
    work.mkdir()
    cfg = work / "kamailio.cfg"
    path = work / "location.db"
    if db:
        db_init(f"sqlite://{path}")
        with sqlite3.connect(path) as conn:  # save("other")'s table, made as location is
            for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = "
                                       "'location' AND sql IS NOT NULL").fetchall():
                conn.execute(sql.replace("location", "other"))
    dbs = (SQLITE % path).replace('"db_mode", 1', f'"db_mode", {int(db)}') if db else ""
    if kemi:
        script = work / "route.py"
        script.write_text(KEMI_SCRIPT)
        cfg.write_text(KEMI_CFG % {"db": dbs, "script": script})
    else:
        cfg.write_text(CFG % {"db": dbs})
    router = kemi_router(cfg)
    router.clock._wall_start = WALL - router.clock.now()
    replies = []
    codes = {save_module.save.__code__: "save", save_module.save_rest.__code__: "save_rest",
             registrar._cfg_save.__code__: "_cfg_save", registrar.save.__code__: "kemi save"}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            assert frames is not None
            frames.append(codes[frame.f_code])

    for n, (text, advance) in enumerate(requests):
        if advance:
            router.advance(advance)
        if db == 2 and n % 37 == 36:
            held.current.ul.flush()  # type: ignore[union-attr]
        if frames is not None:
            sys.setprofile(profile)
        try:
            out = router.request(text)
        finally:
            sys.setprofile(None)
        replies.append([_TO_TAG.sub(rb"\1*.", sent.data) for sent in out.sent])
    st = held.current
    assert st is not None
    records: dict[str, list[tuple[Any, ...]]] = {}
    ruids: dict[str, str] = {}  # (each made anew: named in order of appearance)
    for name, dom in st.ul.domains.items():
        for aor, contacts in sorted(dom.records()):
            records[f"{name}/{aor}"] = [
                (ruids.setdefault(c.ruid, f"ruid-{len(ruids)}"), *c[1:]) for c in contacts]
    rows: list[tuple[Any, ...]] = []
    if db == 2:  # (the records' states compared before it)
        st.ul.flush()
    if db:
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            for row in conn.execute("SELECT 'location', * FROM location UNION ALL "
                                    "SELECT 'other', * FROM other ORDER BY 1, 2"):
                rows.append(tuple(ruids.setdefault(v, f"ruid-{len(ruids)}") if k == "ruid" else v
                                  for k, v in zip(row.keys(), row, strict=True)))
    return replies, records, (st.stats.accepted.value, st.stats.rejected.value), rows


@pytest.mark.parametrize(("seed", "db", "kemi"), [(1, False, False), (2, False, False),
                                                  (3, True, False), (4, False, True)])
def test_the_compiled_save_answers_and_stores_as_the_python_path(
        kemi_router: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
        db: bool, kemi: bool) -> None:
    requests = _requests(seed, 400)
    taken: list[int] = []
    # as built: save() itself compiled (registrar_saver), the Python frames it ran counted
    frames: list[str] = []
    built = _run(kemi_router, tmp_path / "built", db, requests, kemi, frames)

    def counted(*args: Any) -> Any:
        rc = reg_save_usual(*args)
        if rc is not None:
            taken.append(rc)
        return rc

    monkeypatch.setattr(save_module, "save_usual", counted)
    compiled = _run(kemi_router, tmp_path / "compiled", db, requests, kemi)
    monkeypatch.setattr(save_module, "save_usual", lambda *args: None)
    python = _run(kemi_router, tmp_path / "python", db, requests, kemi)
    assert built == compiled
    assert compiled[0] == python[0]
    assert compiled[1] == python[1]
    assert compiled[2] == python[2]
    assert compiled[3] == python[3]
    assert not db or len(compiled[3]) > 3
    assert "location/" in compiled[1]  # the AOR "" saved (the shared store takes no "" key)
    # both of its answers, and many requests left to the Python path
    assert taken.count(1) > 2 and taken.count(2) > 20, taken
    assert len(taken) < len(requests) - 100
    # the compiled save() ran no Python frame of save's for a request reg_save_usual took
    # (and save_rest for one it declined); save_uri() and a first flags text are the Python's
    assert frames.count("save") <= len(requests) - len(taken), frames.count("save")
    # (KEMI's flags are ints: its Python form only for the first, before the state is made)
    assert frames.count("kemi save") <= 1
    assert frames.count("save_rest") > 50 and (frames.count("_cfg_save") > 0) is not kemi


@pytest.mark.parametrize("seed", [5, 6])
def test_write_back_saves_as_update_does(kemi_router: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """usrloc db_mode 2: the compiled save and usrloc's update_one leave the records (their
    sync states too) and, once flushed, the table's rows as save()'s general path does
    (update() with _mark)."""
    requests = _requests(seed, 400)
    taken: list[int] = []

    def counted(*args: Any) -> Any:
        rc = reg_save_usual(*args)
        if rc is not None:
            taken.append(rc)
        return rc

    monkeypatch.setattr(save_module, "save_usual", counted)
    compiled = _run(kemi_router, tmp_path / "compiled", 2, requests)
    monkeypatch.setattr(save_module, "save_usual", lambda *args: None)
    python = _run(kemi_router, tmp_path / "python", 2, requests)
    monkeypatch.setattr(MemDomain, "update_one", lambda *args: None)
    general = _run(kemi_router, tmp_path / "general", 2, requests)
    assert compiled == python == general
    states = {c[-1] for rs in general[1].values() for c in rs}
    assert states == {0, 1, 2}, states  # CS_NEW, CS_SYNC and CS_DIRTY records compared
    assert len(general[3]) > 3
    assert taken.count(1) > 2 and taken.count(2) > 20, taken


def test_write_back_flushes_in_chunks_as_in_one(kemi_router: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush's rows go by one executemany per statement shape, FLUSH_CHUNK rows per
    transaction: split into chunks of three rows (a shape's rows across two chunks, a chunk
    of one row without a transaction) the tables and records end as written in one."""
    requests = _requests(7, 300)
    whole = _run(kemi_router, tmp_path / "whole", 2, requests)
    monkeypatch.setattr(sync, "FLUSH_CHUNK", 3)
    chunked = _run(kemi_router, tmp_path / "chunked", 2, requests)
    assert chunked == whole
    assert len(whole[3]) > 3


def _failing(cur: Any, arg: Any) -> Any:
    raise ZeroDivisionError("the change failed")


def test_a_failed_change_leaves_the_store_as_it_was(kemi_router: Any, tmp_path: Path) -> None:
    """An error inside the compiled write transaction aborts it (store._end, as update_never):
    the record is unchanged, the store takes the next write, the error reaches the script."""
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG % {"db": ""})
    router = kemi_router(cfg, fail_on_script_error=False)
    first = _register(1, "alice", ["<sip:alice@127.0.0.1:5070>"], "a@test", 1, ["Expires: 60"])
    assert router.request(first).final.status == 200
    st = held.current
    assert st is not None and st.usual is not None
    dom = st.ul.domains["location"]
    assert isinstance(dom, MemDomain)
    before = dom.get("alice")
    usual = st.usual
    # (the change reg_save_usual runs: consts' U_ONE, the 13th)
    st.usual = (*usual[:12], _failing, *usual[13:])
    refresh = _register(2, "alice", ["<sip:alice@127.0.0.1:5070>"], "a@test", 2,
                        ["Expires: 60"])
    out = router.request(refresh)
    assert any("ZeroDivisionError" in e for e in out.errors), out.errors
    assert dom.get("alice") == before
    assert dom.table.store._writing is False
    st.usual = usual
    out = router.request(refresh)
    assert out.final is not None and out.final.status == 200
    assert dom.get("alice")[0].cseq == 2


def test_a_failed_database_write_is_answered_as_the_python_path_answers_it(
        kemi_router: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write-through refused by the database after the store changed: save.db_failed's 500,
    the same bytes from both paths, and the refusal counted."""
    first = _register(1, "alice", ["<sip:alice@127.0.0.1:5070>"], "a@test", 1, ["Expires: 60"])
    refresh = _register(2, "alice", ["<sip:alice@127.0.0.1:5070>"], "a@test", 2,
                        ["Expires: 60"])  # (the same phone headers: a request known by then)
    answers = []
    taken: list[int] = []

    def counted(*args: Any) -> Any:
        rc = reg_save_usual(*args)
        taken.append(rc)
        return rc

    for name, usual in (("compiled", counted), ("python", lambda *args: None)):
        monkeypatch.setattr(save_module, "save_usual", usual)
        work = tmp_path / name
        work.mkdir()
        path = work / "location.db"
        db_init(f"sqlite://{path}")
        cfg = work / "kamailio.cfg"
        cfg.write_text(CFG % {"db": SQLITE % path})
        router = kemi_router(cfg)
        router.clock._wall_start = WALL - router.clock.now()
        assert router.request(first).final.status == 200
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE location")
        out = router.request(refresh)
        answers.append(_TO_TAG.sub(rb"\1*.", out.sent[0].data))
        st = held.current
        assert st is not None
        assert (st.stats.accepted.value, st.stats.rejected.value) == (1, 1)
    assert taken == [None, -1]  # (the first one new, the refresh answered by the compiled call)
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"SIP/2.0 500 Server Internal Error\r\n")
    assert b"P-Registrar-Error: usrloc_contact_insert failed\r\n" in answers[0]
