"""Digest authentication under attack, on a real kemi server with two workers, over UDP.

Beyond what Kamailio does by default: replayed responses refused (nonce_count with qop, and
one-time nonces) whichever worker gets them, stale nonces answered with ``stale=true``,
overlong credentials answered with 400 (and the worker goes on), SQL in user names and
domains stored and matched as plain text, and a brute-force burst of wrong passwords from one
address blocked by pike and htable exactly as the official example's REQINIT route does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_auth.testing import DigestUA, credentials, parse_challenge
from kemi_core.testing import db_init
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.wait import wait_until

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "db_sqlite.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "htable.so"
loadmodule "pike.so"
modparam("auth_db", "db_url", "sqlite://{db}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "use_domain", 1)
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 16)
modparam("pike", "remove_latency", 4)
modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")
{extra}
request_route {{
    # the official example's flood detection (route[REQINIT] with WITH_ANTIFLOOD)
    if (src_ip != myself) {{
        if ($sht(ipban=>$si) != $null) {{
            exit;
        }}
        if (!pike_check_req()) {{
            xlog("L_ALERT", "ALERT: pike blocking $rm from $fu (IP:$si:$sp)\\n");
            $sht(ipban=>$si) = 1;
            exit;
        }}
    }}
    append_to_reply("X-Pid: $pp\\r\\n");
    if (!auth_check("$fd", "subscriber", "1")) {{
        $var(rc) = $rc;
        append_to_reply("X-RC: $var(rc)\\r\\n");
        auth_challenge("$fd", "{flags}");
        exit;
    }}
    append_to_reply("X-User: $au@$ad\\r\\n");
    sl_send_reply("200", "OK");
}}
"""

USERS = [
    ("alice", "127.0.0.1", "secret"),
    ("o'hara", "127.0.0.1", "pw'1"),
    ("x'OR'1'='1", "127.0.0.1", "injected"),
    ("bob", "evil.example'; DROP TABLE subscriber; --", "bobpw"),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("authsec") / "auth.db"
    db_init(f"sqlite://{db}", "auth_db")
    with sqlite3.connect(db) as con:
        con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?,?,?)",
                        USERS)
    return db


@pytest.fixture
def start(tmp_path: Path, database: Path) -> Iterator[Callable[..., tuple[KemiProcess, int]]]:
    procs: list[KemiProcess] = []

    def run(flags: int = 0, extra: str = "") -> tuple[KemiProcess, int]:
        port = free_port()
        cfg = tmp_path / f"kamailio-{port}.cfg"
        cfg.write_text(CFG.format(port=port, db=database, flags=flags, extra=extra))
        procs.append(KemiProcess(cfg, tmp_path).start())
        return procs[-1], port

    yield run
    for p in procs:
        p.stop()


def test_replayed_nc_refused_by_every_worker(start: Callable[..., tuple[KemiProcess, int]]) -> None:
    _, port = start(flags=1, extra='modparam("auth", "nonce_count", 1)')
    with DigestUA(port) as ua:
        ch = parse_challenge(ua.request("REGISTER"))
        assert ch is not None and ch.qop == "auth"
        good = credentials(ch, "REGISTER", "sip:127.0.0.1", "alice", "secret", nc=1)
        first = ua.request("REGISTER", auth=good)
        assert first is not None and first.status == 200
        assert ua.request("REGISTER", auth=good).header("X-RC") == "-4"  # type: ignore[union-attr]
        assert ua.request("REGISTER", auth=credentials(
            ch, "REGISTER", "sip:127.0.0.1", "alice", "secret", nc=2)).status == 200  # type: ignore[union-attr]
    # The same replay from other sockets, so that the other worker gets it too.
    answered: set[str] = set()
    for _ in range(64):
        with DigestUA(port) as other:
            reply = other.request("REGISTER", auth=good)
            assert reply is not None and reply.status == 401 and reply.header("X-RC") == "-4"
            answered.add(reply.header("X-Pid") or "")
        if len(answered) == 2:
            break
    assert len(answered) == 2, "the replay never reached the second worker"


def test_one_time_nonce_refuses_any_second_answer(start: Callable[..., tuple[KemiProcess, int]]) -> None:
    _, port = start(extra='modparam("auth", "one_time_nonce", 1)')
    with DigestUA(port) as ua:
        ch = parse_challenge(ua.request("REGISTER"))
        assert ch is not None
        good = credentials(ch, "REGISTER", "sip:127.0.0.1", "alice", "secret")
        assert ua.request("REGISTER", auth=good).status == 200  # type: ignore[union-attr]
        replay = ua.request("REGISTER", auth=good)
        assert replay is not None and (replay.status, replay.header("X-RC")) == (401, "-6")
        # a guess with a wrong password uses the nonce up as well
        ch2 = parse_challenge(replay)
        assert ch2 is not None
        assert ua.request("REGISTER", auth=credentials(
            ch2, "REGISTER", "sip:127.0.0.1", "alice", "guess")).header("X-RC") == "-2"  # type: ignore[union-attr]
        assert ua.request("REGISTER", auth=credentials(
            ch2, "REGISTER", "sip:127.0.0.1", "alice", "secret")).header("X-RC") == "-6"  # type: ignore[union-attr]


def test_stale_nonce_gets_stale_true_only_with_the_right_password(
        start: Callable[..., tuple[KemiProcess, int]]) -> None:
    _, port = start(extra='modparam("auth", "nonce_expire", 1)')
    with DigestUA(port) as ua:
        ch = parse_challenge(ua.request("REGISTER"))
        assert ch is not None and not ch.stale
        good = credentials(ch, "REGISTER", "sip:127.0.0.1", "alice", "secret")
        wrong = credentials(ch, "REGISTER", "sip:127.0.0.1", "alice", "wrong")
        replies = []

        def stale() -> bool:
            replies.append(ua.request("REGISTER", auth=good))
            return replies[-1] is not None and replies[-1].header("X-RC") == "-4"

        wait_until(stale, 10.0, "the nonce to expire")
        fresh = parse_challenge(replies[-1])  # type: ignore[arg-type]
        assert fresh is not None and fresh.stale and fresh.nonce != ch.nonce
        # a client that does not know the password learns nothing from an old nonce
        bad = ua.request("REGISTER", auth=wrong)
        assert bad is not None and bad.header("X-RC") == "-4"
        assert not parse_challenge(bad).stale  # type: ignore[union-attr]
        # the stale=true challenge is answered without asking the user again
        again = ua.request("REGISTER", auth=credentials(fresh, "REGISTER", "sip:127.0.0.1",
                                                        "alice", "secret"))
        assert again is not None and again.status == 200


@pytest.mark.parametrize("field", ["username", "realm", "nonce", "uri", "response", "cnonce",
                                   "many parameters"])
def test_overlong_credentials_answered_400(start: Callable[..., tuple[KemiProcess, int]],
                                           field: str) -> None:
    proc, port = start()
    with DigestUA(port) as ua:
        ch = parse_challenge(ua.request("REGISTER"))
        assert ch is not None
        good = credentials(ch, "REGISTER", "sip:127.0.0.1", "alice", "secret", qop="auth")
        if field == "many parameters":
            value = good + "".join(f", x{i}=1" for i in range(40))
        else:
            start_at = good.index(f'{field}="') + len(field) + 2
            value = good[:start_at] + "9" * 5000 + good[start_at:]
        ua.send(ua.build("REGISTER", auth=value))
        reply = ua.recv()
        assert reply is not None and (reply.status, reply.reason) == (400, "Bad Request")
        assert ua.recv(timeout=0.3) is None  # one reply: no challenge after the 400
        # the worker goes on
        assert ua.request("REGISTER", auth=good.replace("nc=00000001", "nc=00000002")) is not None
    assert proc.proc is not None and proc.proc.poll() is None
    assert "400 to 127.0.0.1" in proc.log()


def test_sql_in_names_is_plain_text(start: Callable[..., tuple[KemiProcess, int]],
                                    database: Path) -> None:
    _, port = start()
    # users whose names look like SQL register with their own password, and only with it
    for user, password in (("o'hara", "pw'1"), ("x'OR'1'='1", "injected")):
        with DigestUA(port, user=user, password=password) as ua:
            ok = ua.register()
            assert ok is not None and ok.status == 200
            assert ok.header("X-User") == f"{user}@127.0.0.1"
        with DigestUA(port, user=user, password="secret") as ua:  # alice's password
            assert ua.register().header("X-RC") == "-2"  # type: ignore[union-attr]
    # an injection that would match every row if it were SQL matches none
    with DigestUA(port, user="nobody'OR'1'='1", password="secret") as ua:
        assert ua.register().header("X-RC") == "-3"  # type: ignore[union-attr]
    # a domain with SQL in it (use_domain=1, from the user@domain username), taken as written
    evil = "bob@evil.example'; DROP TABLE subscriber; --"
    with DigestUA(port, user=evil, password="bobpw") as ua:
        reply = ua.register(from_user="bob", to_user="bob")
        assert reply is not None and reply.status == 200
    with DigestUA(port, user="bob@127.0.0.1", password="bobpw") as ua:  # bob is not in this domain
        assert ua.register(from_user="bob", to_user="bob").header("X-RC") == "-3"  # type: ignore[union-attr]
    with sqlite3.connect(database) as con:
        assert con.execute("SELECT count(*) FROM subscriber").fetchone()[0] == len(USERS)


def test_brute_force_burst_blocked_by_pike_and_htable(
        start: Callable[..., tuple[KemiProcess, int]]) -> None:
    proc, port = start()
    answered = 0
    with DigestUA(port, src="127.0.0.2", password="guess", timeout=1.5) as attacker:
        for i in range(60):
            reply = attacker.register(password=f"guess{i}")
            if reply is None:
                break
            assert reply.status == 401
            answered += 1
        # banned: nothing more is answered from that address, the right password included
        assert attacker.register(password="secret") is None
    assert answered < 20, "pike let too many guesses through"
    assert "ALERT: pike blocking REGISTER" in proc.log()
    # everybody else is served
    with DigestUA(port, src="127.0.0.3") as user:
        ok = user.register()
        assert ok is not None and ok.status == 200
    assert proc.rpc("htable.get", "ipban", "127.0.0.2")["item"]["value"] == 1
