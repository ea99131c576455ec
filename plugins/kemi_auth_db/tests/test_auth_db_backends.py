"""auth_db on SQLite and on PostgreSQL (the suite's private server), in a real kemi server:
plain passwords (calculate_ha1=1) and stored HA1s (ha1, and ha1b for user@domain usernames),
use_domain, load_credentials into AVPs, and names with SQL in them matched as text."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_auth.testing import DigestUA
from kemi_core.api import db
from kemi_core.testing import KemiProcess, db_init, free_port

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
loadmodule "db_sqlite.so"
loadmodule "db_postgres.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "{url}")
modparam("auth_db", "calculate_ha1", {calc})
modparam("auth_db", "password_column", "{column}")
modparam("auth_db", "use_domain", 1)
modparam("auth_db", "load_credentials", "$avp(caller_id)=rpid;email_address")
request_route {{
    if (!auth_check("$fd", "subscriber", "1")) {{
        $var(rc) = $rc;
        append_to_reply("X-RC: $var(rc)\\r\\n");
        auth_challenge("$fd", "0");
        exit;
    }}
    append_to_reply("X-RPID: $avp(caller_id)\\r\\nX-Mail: $avp(email_address)\\r\\n");
    sl_send_reply("200", "OK");
}}
"""


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


REALM = "127.0.0.1"
USERS = [  # username, domain, password, rpid, email
    ("alice", "127.0.0.1", "secret", "+4930100", "alice@example.com"),
    ("alice", "other.example", "other", "+4930999", None),
    ("o'hara", "127.0.0.1", "pw'1", None, None),
]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = f"sqlite://{tmp_path}/auth.db"
    else:
        target = request.getfixturevalue("postgres_server").new_database()
    db_init(target, "auth_db")
    conn = db.open_standalone(target)
    try:
        for col in ("rpid", "email_address"):  # extra columns, as an operator adds them
            conn.raw_query(f"ALTER TABLE subscriber ADD COLUMN {col} VARCHAR(128)")
        for user, domain, password, rpid, email in USERS:
            conn.insert("subscriber", {
                "username": user, "domain": domain, "password": password,
                # stored HA1s are computed over the realm the server challenges with ($fd)
                "ha1": md5(f"{user}:{REALM}:{password}"),
                "ha1b": md5(f"{user}@{domain}:{REALM}:{password}"),
                "rpid": rpid, "email_address": email})
    finally:
        conn.close()
    return target


def start(tmp_path: Path, url: str, calc: int, column: str) -> Iterator[int]:
    port = free_port()
    cfg = tmp_path / f"kamailio-{calc}.cfg"
    cfg.write_text(CFG.format(port=port, url=url, calc=calc, column=column))
    with KemiProcess(cfg, tmp_path):
        yield port


@pytest.mark.parametrize(("calc", "column"), [(1, "password"), (0, "ha1")])
def test_subscriber_table(tmp_path: Path, url: str, calc: int, column: str) -> None:
    for port in start(tmp_path, url, calc, column):
        with DigestUA(port, "alice", "secret") as ua:
            ok = ua.register()
            assert ok is not None and ok.status == 200
            assert (ok.header("X-RPID"), ok.header("X-Mail")) == ("+4930100", "alice@example.com")
            assert ua.register(password="other").header("X-RC") == "-2"  # type: ignore[union-attr]
        # the same name in another domain is another subscriber (use_domain=1): the domain
        # comes from a user@domain username (ha1b when HA1s are stored)
        with DigestUA(port, "alice@other.example", "other") as ua:
            reply = ua.register(from_user="alice", to_user="alice")
            assert reply is not None and reply.status == 200
            assert reply.header("X-RPID") == "+4930999" and reply.header("X-Mail") == "<null>"
        with DigestUA(port, "o'hara", "pw'1") as ua:
            assert ua.register().status == 200  # type: ignore[union-attr]
        with DigestUA(port, "alice' OR '1'='1", "secret") as ua:
            assert ua.register(from_user="x", to_user="x").header("X-RC") == "-3"  # type: ignore[union-attr]
