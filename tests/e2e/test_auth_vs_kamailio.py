"""auth + auth_db side by side with Kamailio 5.6: the same kamailio.cfg on the same SQLite
subscriber table, the same requests; auth_check's return code (X-RC) and the reply compared.

Each server makes its own nonces, so every step computes its credentials from the challenge
that server gave. Compared: status, X-RC, and the challenge's realm, qop and algorithm (never
the nonce). ``stale=true`` is left out here: kemi adds it, as RFC 7616 asks, when a stale nonce
came with the right password, where Kamailio 5.6 does not (tests/e2e/test_auth_security.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from kemi_auth.testing import Challenge, DigestUA, credentials, parse_challenge
from kemi_core.sip import SipMsg
from kemi_core.testing import db_init
from kemi_core.testing.kamailio import KAMAILIO_MPATH, KamailioProcess, kamailio_available
from kemi_core.testing.process import KemiProcess, free_port
from kemi_core.testing.wait import wait_until

pytestmark = pytest.mark.skipif(
    not kamailio_available("auth.so", "auth_db.so", "db_sqlite.so", "textops.so"),
    reason="Kamailio 5.6 with auth, auth_db and db_sqlite is not installed")

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=1
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
modparam("ctl", "binrpc", "{ctl}")
modparam("auth_db", "db_url", "sqlite://{db}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
{extra}
request_route {{
    if (!auth_check("$fd", "subscriber", "1")) {{
        $var(rc) = $rc;
        append_to_reply("X-RC: $var(rc)\\r\\n");
        auth_challenge("$fd", "{flags}");
        exit;
    }}
    $var(rc) = $rc;
    consume_credentials();
    append_to_reply("X-RC: $var(rc)\\r\\n");
    sl_send_reply("200", "OK");
}}
"""

#: (challenge flags, extra modparams) per configuration set
SETS: dict[str, tuple[int, str]] = {
    "plain": (0, ""),
    "qop": (1, ""),
    "nonce_count": (1, 'modparam("auth", "nonce_count", 1)\n'
                       'modparam("auth", "one_time_nonce", 1)\n'),
    "one_time": (0, 'modparam("auth", "one_time_nonce", 1)\n'),
    "stale": (0, 'modparam("auth", "nonce_expire", 2)\n'),
    "sha256": (1, 'modparam("auth", "algorithm", "SHA-256")\n'),
}


@attrs.define
class Walk:
    """One client's state through a case: the last challenge and the last credentials."""

    ua: DigestUA
    ch: Challenge | None = None
    auth: str = ""
    hf: str = "Authorization"


Step = Callable[[Walk], "SipMsg | None"]


def challenge(method: str = "REGISTER") -> Step:
    def run(w: Walk) -> SipMsg | None:
        reply = w.ua.request(method)
        w.ch = parse_challenge(reply) if reply is not None else None
        return reply
    return run


def answer(method: str = "REGISTER", password: str = "secret", user: str = "alice",
           realm: str | None = None, nonce: Callable[[str], str] | None = None,
           algorithm: str | None = None, qop: str | None = None, nc: int = 1,
           hf: str | None = None, from_user: str | None = None, to_user: str | None = None,
           uri: str | None = None) -> Step:
    """Answer the last challenge (with whatever is wrong with the answer)."""
    def run(w: Walk) -> SipMsg | None:
        assert w.ch is not None, "no challenge to answer"
        ch = attrs.evolve(w.ch, realm=realm if realm is not None else w.ch.realm,
                          nonce=nonce(w.ch.nonce) if nonce else w.ch.nonce)
        ruri = "sip:127.0.0.1" if method == "REGISTER" else "sip:bob@127.0.0.1"
        w.auth = credentials(ch, method, uri or ruri, user, password, nc=nc, qop=qop,
                             algorithm=algorithm)
        w.hf = hf or ("Authorization" if method == "REGISTER" else "Proxy-Authorization")
        return w.ua.request(method, auth=w.auth, hf=w.hf, from_user=from_user, to_user=to_user)
    return run


def again(method: str = "REGISTER") -> Step:
    """The last credentials once more, in a new request."""
    return lambda w: w.ua.request(method, auth=w.auth, hf=w.hf)


def raw(value: str, method: str = "REGISTER") -> Step:
    return lambda w: w.ua.request(method, auth=value)


def until_stale(w: Walk) -> SipMsg | None:
    """Resend the last credentials until the server calls them stale (nonce_expire 2)."""
    replies: list[SipMsg | None] = []

    def stale() -> bool:
        replies.append(w.ua.request("REGISTER", auth=w.auth, hf=w.hf))
        return replies[-1] is not None and replies[-1].header("X-RC") == "-4"

    wait_until(stale, 10.0, "the nonce to become stale")
    return replies[-1]


def _flip(nonce: str) -> str:
    return nonce[:-2] + ("AB" if nonce[-2:] != "AB" else "CD")


CASES: dict[str, tuple[str, list[tuple[str, Step]]]] = {
    "register": ("plain", [
        ("no credentials", challenge()),
        ("right password", answer()),
        ("wrong password", answer(password="wrong")),
        ("unknown user", answer(user="nobody")),
        ("user@domain username", answer(user="alice@127.0.0.1")),
        ("auth user is not the To/From user", answer(from_user="bob", to_user="bob")),
        ("case matters in the user", answer(from_user="Alice", to_user="Alice")),
        ("another realm", answer(realm="example.com")),
        ("forged nonce", answer(nonce=_flip)),
        ("truncated nonce", answer(nonce=lambda n: n[:10])),
        ("SHA-256 response to an MD5 challenge", answer(algorithm="SHA-256")),
        ("qop=auth though not offered", answer(qop="auth")),
        ("another request URI in the digest", answer(uri="sip:example.org")),
        ("reused nonce: accepted by default", again()),
        ("not Digest", raw("Basic YWxpY2U6c2VjcmV0")),
        ("Digest without parameters", raw("Digest foo")),
        ("SQL in the username", answer(user="alice' OR '1'='1")),
    ]),
    "invite": ("plain", [
        ("no credentials: 407", challenge("INVITE")),
        ("Proxy-Authorization", answer("INVITE")),
        ("Authorization instead: no credentials", answer("INVITE", hf="Authorization")),
        ("From another user", answer("INVITE", from_user="carol")),
    ]),
    "qop_offered": ("qop", [
        ("challenge offers qop", challenge()),
        ("qop=auth", answer(qop="auth")),
        ("same nc again: no counting without nonce_count", again()),
        ("without qop", answer(qop="")),
    ]),
    "nonce_count": ("nonce_count", [
        ("challenge", challenge()),
        ("wrong password, nc 1", answer(password="x", qop="auth", nc=1)),
        ("nc 2", answer(qop="auth", nc=2)),
        ("nc 2 again: stale", again()),
        ("nc 1: stale", answer(qop="auth", nc=1)),
        ("nc 5", answer(qop="auth", nc=5)),
        ("nc 256: stale", answer(qop="auth", nc=256)),
        ("no nc: one-time", answer(qop="")),
        ("no nc again: reused", again()),
    ]),
    "one_time": ("one_time", [
        ("challenge", challenge()),
        ("wrong password uses it up", answer(password="x")),
        ("right password: reused", answer()),
        ("new challenge", challenge()),
        ("right password", answer()),
        ("replayed: reused", again()),
    ]),
    "sha256": ("sha256", [
        ("challenge names SHA-256", challenge()),
        ("SHA-256 response", answer(qop="auth")),
        ("MD5 response to a SHA-256 challenge", answer(algorithm="MD5", qop="auth", nc=2)),
        ("wrong password", answer(password="x", qop="auth", nc=3)),
        ("INVITE", challenge("INVITE")),
        ("INVITE answered", answer("INVITE", qop="auth")),
    ]),
    "stale": ("stale", [
        ("challenge", challenge()),
        ("right password", answer()),
        ("the same once expired", until_stale),
    ]),
}


def normalised(reply: SipMsg | None) -> list[str]:
    if reply is None:
        return ["<no reply>"]
    out = [f"{reply.status} {reply.reason}", f"X-RC: {reply.header('X-RC')}"]
    ch = parse_challenge(reply)
    if ch is not None:
        out.append(f"{ch.header}: realm={ch.realm} qop={ch.qop or '-'} "
                   f"algorithm={ch.algorithm}")
    return out


class Servers:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "auth.db"
        db_init(f"sqlite://{self.db}", "auth_db")
        with sqlite3.connect(self.db) as con:
            con.execute("INSERT INTO subscriber (username, domain, password) "
                        "VALUES ('alice', '127.0.0.1', 'secret')")
        self.running: dict[str, tuple[int, int]] = {}
        self.procs: list[KamailioProcess | KemiProcess] = []

    def ports(self, name: str) -> tuple[int, int]:
        if name not in self.running:
            self.running[name] = (self._start("kamailio", name), self._start("kemi", name))
        return self.running[name]

    def _start(self, who: str, name: str) -> int:
        port = free_port()
        work = self.tmp / f"{who}-{name}"
        work.mkdir(exist_ok=True)
        ctl = f"unix:{work}/{'ctl' if who == 'kamailio' else 'kemi_ctl'}"
        flags, extra = SETS[name]
        cfg = work / "kamailio.cfg"
        # Kamailio reads sqlite:///path relative to its working directory: four slashes.
        cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, ctl=ctl, db=f"/{self.db}",
                                  extra=extra, flags=flags))
        proc: KamailioProcess | KemiProcess
        proc = KamailioProcess(cfg, work, ctl) if who == "kamailio" else KemiProcess(cfg, work)
        self.procs.append(proc.start())
        return port

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    srv = Servers(tmp_path_factory.mktemp("authvskam"))
    yield srv
    srv.stop()


def run_case(port: int, steps: list[tuple[str, Step]]) -> list[list[str]]:
    out = []
    with DigestUA(port) as ua:
        walk = Walk(ua)
        for label, step in steps:
            out.append([f"# {label}", *normalised(step(walk))])
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_answers_as_kamailio(servers: Servers, case: str) -> None:
    config, steps = CASES[case]
    kam_port, kemi_port = servers.ports(config)
    assert run_case(kemi_port, steps) == run_case(kam_port, steps)
