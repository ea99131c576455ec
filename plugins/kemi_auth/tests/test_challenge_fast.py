"""The compiled challenge (kemi_core.sip's digest_challenge) against the Python path: the same
requests challenged with and without it get the same reply and header, nonce included."""

from __future__ import annotations

import random
import struct
import time
from typing import Any

import pytest

import kemi_auth
from kemi_auth import nonce
from kemi_auth.nonce import NC, OTN, NonceCodec, NonceStatus
from kemi_auth.verify import STATE, AuthState
from kemi_core.api import MsgContext
from kemi_core.sip import digest_challenge, nonce_seal
from kemi_core.testing import context, offline_core, request

needs_c = pytest.mark.skipif(digest_challenge is None, reason="kemi_core.sip._fast not built")

KEY = bytes(range(32))
NID = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@needs_c
def test_value_is_the_sealed_nonce_in_the_header_text() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        realm = rng.choice(("127.0.0.1", "example.com", "ünï.example", "", "a b", "x" * 300))
        flags, expire = rng.choice((0, NC, OTN, NC | OTN, 0xF0)), rng.choice((0, 30, 300))
        now = rng.uniform(0, 2_000_000_000)
        nid, tail = rng.randbytes(8), rng.choice(("", ', qop="auth"', ", stale=true"))
        head = struct.pack(">BBII8s", 1, flags, int(now), int(now) + expire, nid)
        want = f'Digest realm="{realm}", nonce="{nonce_seal(head, KEY)}"{tail}'
        assert digest_challenge(realm, KEY, flags, now, expire, nid, tail) == want


@needs_c
def test_declines_what_the_python_path_makes() -> None:
    args: list[Any] = ["r", KEY, 0, 1_000.5, 30, NID, ""]
    assert digest_challenge(*args) is not None
    for at, value in ((0, 'a"b'), (0, "a\\b"), (2, 1), (2, 0x0F), (2, 256), (2, -1),
                      (3, -1.0), (3, float("nan")), (3, float("inf")), (3, 4294967296.0),
                      (4, -1), (4, 2**32), (4, 2**80), (2, 2**80)):
        assert digest_challenge(*args[:at], value, *args[at + 1:]) is None, (at, value)
    assert digest_challenge("r", KEY, 0, 4294967295.0, 0, NID, "") is not None
    assert digest_challenge("r", KEY, 0, 4294967295.0, 1, NID, "") is None  # expires overflows
    wrong: tuple[tuple[int, Any], ...] = ((0, b"r"), (2, 1.0), (3, 1000), (4, 1.0),
                                          (5, b"short"), (6, None))
    for at, value in wrong:
        with pytest.raises(TypeError):
            digest_challenge(*args[:at], value, *args[at + 1:])
    with pytest.raises(ValueError):
        digest_challenge("r", b"", 0, 1.0, 30, NID, "")
    with pytest.raises(TypeError):
        digest_challenge("r", KEY, 0, 1.0, 30, NID)


# ---- AuthApi.challenge with and without it ----------------------------------------------
def _api(params: dict[tuple[str, str], Any], compiled: bool) -> tuple[Any, Any, list[Any]]:
    core, _ = offline_core(("auth", kemi_auth), params={("auth", "secret"): "s", **params})
    auth = kemi_auth.api()
    if not compiled:
        auth.tails = None
    sent: list[Any] = []

    def reply(ctx: MsgContext, code: int, reason: str, headers: list[tuple[str, str]]) -> bool:
        sent.append((code, reason, headers))
        return True

    auth.reply = reply
    return core, auth, sent


def _challenge(core: Any, auth: Any, msg: Any, realm: str, flags: int, stale: bool,
               proxy: bool) -> int:
    nonce.IDS[:] = [NID, NID]  # (a compiled call that declines has drawn one)
    ctx: MsgContext = context(core, msg)
    if stale:
        ctx.mod_state[STATE] = AuthState(stale=True)
    return auth.challenge(ctx, realm, flags, proxy)  # type: ignore[no-any-return]


@needs_c
@pytest.mark.parametrize("params", [
    {},
    {("auth", "algorithm"): "SHA-256"},
    {("auth", "nonce_count"): 1, ("auth", "one_time_nonce"): 1},
    {("auth", "one_time_nonce"): 1, ("auth", "nonce_expire"): 5},
    {("auth", "realm_prefix"): "sip."},
    {("auth", "auth_checks_register"): 3},
], ids=["default", "sha256", "replay", "otn", "prefix", "bound"])
def test_challenge_is_the_python_paths(params: dict[tuple[str, str], Any],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    fast_core, fast, fast_sent = _api(params, True)
    py_core, py, py_sent = _api(params, False)
    assert py.tails is None
    compiled = fast.tails is not None
    assert compiled is not any(key[1] in ("realm_prefix", "auth_checks_register")
                               for key in params)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.75)
    for _ in range(500):
        msg = request(rng.choice(("REGISTER", "INVITE", "ACK", "MESSAGE")), "sip:bob@127.0.0.1",
                      5070)  # (one message for both: a bound nonce covers its Call-ID)
        realm = rng.choice(("127.0.0.1", "sip.example.com", 'qu"ote', "back\\slash", "",
                            "ünï"))
        flags, stale, proxy = rng.randrange(32), rng.random() < 0.3, rng.random() < 0.5
        rc = _challenge(fast_core, fast, msg, realm, flags, stale, proxy)
        assert rc == _challenge(py_core, py, msg, realm, flags, stale, proxy)
        assert fast_sent == py_sent
        if fast_sent and fast_sent[-1][0] in (401, 407):
            value = fast_sent[-1][2][0][1]
            nonce_text = value.partition('nonce="')[2].partition('"')[0]
            check = NonceCodec("s").check(nonce_text, 1_800_000_001.0, lambda checks: b"")
            assert check.status in (NonceStatus.OK, NonceStatus.STALE)
        fast_sent.clear()
        py_sent.clear()
