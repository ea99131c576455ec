"""auth_check's usual path (auth's authenticate with the identity rule, one call) against the
general one (_authenticate, then check_identity): the same requests get the same answers."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import kemi_auth
import kemi_auth_db
import kemi_db_sqlite
from kemi_auth import digest
from kemi_auth.verify import STATE, AuthResult
from kemi_core.testing import context, offline_core, request_text

USERS = {"alice": "secret", "bob": "pässwörd"}


def _core(tmp_path: Path, params: dict[tuple[str, str], Any]) -> Any:
    db = tmp_path / "auth.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE subscriber (username TEXT, domain TEXT, password TEXT, "
                    "ha1 TEXT, ha1b TEXT)")
        con.executemany("INSERT INTO subscriber VALUES (?, ?, ?, '', '')",
                        [(user, "example.com", pw) for user, pw in USERS.items()])
    core, _ = offline_core(("db_sqlite", kemi_db_sqlite), ("auth", kemi_auth),
                           ("auth_db", kemi_auth_db),
                           params={("auth", "secret"): "s", ("auth_db", "db_url"): f"sqlite://{db}",
                                   ("auth_db", "calculate_ha1"): 1, ("auth_db", "version_table"): 0,
                                   ("auth_db", "password_column"): "password", **params})
    return core


def _request(rng: random.Random, codec: Any, now: float) -> tuple[str, str]:
    method = rng.choice(("REGISTER", "INVITE", "PUBLISH", "MESSAGE", "BYE"))
    user = rng.choice(("alice", "bob", "carol", "alice@example.com"))
    frm, to = rng.choice(("alice", "bob", "")), rng.choice(("alice", "bob", ""))
    domain = rng.choice(("example.com", "Example.COM", "other.org"))
    realm = rng.choice(("example.com", "other.org", "sip.example.com"))
    password = USERS.get(user.partition("@")[0], "x") if rng.random() < 0.8 else "wrong"
    nonce = codec.make(now - rng.choice((0, 0, 0, 1000)))
    uri = f"sip:{domain}"
    qop = rng.choice(("", "auth"))
    h1 = digest.ha1("MD5", user, realm, password)
    resp = digest.response("MD5", h1, nonce, digest.ha2("MD5", method, uri, qop), qop,
                           "00000001", "0a4f113b")
    value = (f'Digest username="{user}",realm="{realm}",nonce="{nonce}",uri="{uri}",'
             f'response="{resp}",algorithm=MD5')
    if qop:
        value += ',qop=auth,nc=00000001,cnonce="0a4f113b"'
    hf = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
    if rng.random() < 0.1:
        hf = "Authorization" if hf != "Authorization" else "Proxy-Authorization"
    extra = f"{hf}: {value}\r\n" if rng.random() < 0.9 else ""
    text = request_text(method, f"sip:{to or 'x'}@{domain}", extra=extra,
                        frm=f"<sip:{frm}@{domain}>;tag=1", to=f"<sip:{to}@{domain}>")
    return text.replace("PORT", "5070"), rng.choice((realm, realm, ""))


@pytest.mark.parametrize("params", [
    {},
    {("auth_db", "use_domain"): 1},
    {("auth", "realm_prefix"): "sip."},
], ids=["default", "use_domain", "realm_prefix"])
def test_auth_check_usual_path_decides_as_the_general_one(
        tmp_path: Path, params: dict[tuple[str, str], Any]) -> None:
    core = _core(tmp_path, params)
    state = kemi_auth_db._state
    codec = kemi_auth.api().codec
    rng = random.Random(23)
    now = time.time()
    seen: set[int] = set()
    used = 0  # (auth is bound, and the usual path taken, from the first call that gets there)
    for _ in range(600):
        text, realm = _request(rng, codec, now)
        flags = rng.randrange(4)
        answers = []
        for usual in (True, False):
            kept = state.usual
            used += usual and kept is not None
            if not usual:
                state.usual = None
            ctx = context(core, text)
            rc = kemi_auth_db.auth_check(ctx, realm, "subscriber", flags)
            st = ctx.mod_state.get(STATE)
            answers.append((rc, st.authorized if st is not None else None))
            if not usual:
                state.usual = kept
        assert answers[0] == answers[1], text
        seen.add(answers[0][0])
    assert used > 400
    assert {AuthResult.OK, AuthResult.INVALID_PASSWORD, AuthResult.USER_UNKNOWN,
            AuthResult.NO_CREDENTIALS, AuthResult.STALE_NONCE, AuthResult.USER_MISMATCH} <= seen


def test_load_credentials_keeps_the_general_path(tmp_path: Path) -> None:
    core = _core(tmp_path, {("auth_db", "load_credentials"): "$avp(pw)=password"})
    ctx = context(core, request_text("REGISTER", "sip:example.com").replace("PORT", "5070"))
    assert kemi_auth_db.auth_check(ctx, "example.com", "subscriber", 1) == (
        AuthResult.NO_CREDENTIALS)
    assert kemi_auth_db._state.auth is not None and kemi_auth_db._state.usual is None
