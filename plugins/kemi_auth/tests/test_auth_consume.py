"""Finding and consuming credentials: none, the usual single header, several realms."""

from __future__ import annotations

import hashlib

import pytest

import kemi_auth
from kemi_core.api import MsgContext
from kemi_core.testing import context, offline_core, request

URI = "sip:bob@127.0.0.1"


def _credentials(realm: str, nonce: str, password: str = "pw") -> str:
    ha1 = hashlib.md5(f"alice:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{URI}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (f'Digest username="alice", realm="{realm}", nonce="{nonce}", uri="{URI}", '
            f'response="{response}", algorithm=MD5')


def _ctx(*realms: str, hf: str = "Proxy-Authorization") -> MsgContext:
    core, _ = offline_core(("auth", kemi_auth))
    first = context(core, request("INVITE", URI, 5070))
    nonce = kemi_auth.api().new_nonce(first)
    extra = "".join(f"{hf}: {_credentials(r, nonce)}\r\n" for r in realms)
    return context(core, request("INVITE", URI, 5070, extra=extra))


def test_no_credentials() -> None:
    ctx = _ctx()
    assert kemi_auth.pv_proxy_authenticate(ctx, "a.example", "pw", 0) == -5
    assert kemi_auth.consume_credentials(ctx) == -1


def test_the_usual_single_header_is_verified_and_consumed() -> None:
    ctx = _ctx("a.example")
    assert kemi_auth.pv_proxy_authenticate(ctx, "a.example", "pw", 0) == 1
    assert kemi_auth.consume_credentials(ctx) == 1
    assert ctx.msg.headers("Proxy-Authorization") == []
    assert kemi_auth.pv_proxy_authenticate(_ctx("a.example"), "a.example", "bad", 0) == -2
    assert kemi_auth.pv_proxy_authenticate(_ctx("a.example"), "b.example", "pw", 0) == -5


def test_several_realms_only_the_verified_one_is_consumed() -> None:
    ctx = _ctx("b.example", "a.example", "c.example")
    assert kemi_auth.pv_proxy_authenticate(ctx, "a.example", "pw", 0) == 1
    assert kemi_auth.consume_credentials(ctx) == 1
    left = ctx.msg.headers("Proxy-Authorization")
    assert [kemi_auth.credentials.realm_of(v) for v in left] == ["b.example", "c.example"]


def test_www_credentials_are_not_proxy_ones() -> None:
    ctx = _ctx("a.example", hf="Authorization")
    assert kemi_auth.pv_proxy_authenticate(ctx, "a.example", "pw", 0) == -5
    assert kemi_auth.pv_www_authenticate(ctx, "a.example", "pw", 0) == 1


@pytest.mark.parametrize("stateless", [0, 1])
def test_challenge_goes_after_the_script_queued_headers_which_stay(stateless: int) -> None:
    import kemi_sl

    core, wire = offline_core(("sl", kemi_sl), ("auth", kemi_auth),
                              params={("auth", "force_stateless_reply"): stateless})
    ctx = context(core, request("INVITE", URI, 5070))
    ctx.extra["reply_headers"] = [("X-Script", "1")]
    assert kemi_auth.auth_challenge(ctx, "a.example", 0) == 1
    head = wire.sent[-1].data.decode().split("\r\n\r\n")[0].split("\r\n")
    assert head[0] == "SIP/2.0 407 Proxy Authentication Required"
    assert head.index("X-Script: 1") < [h.startswith("Proxy-Authenticate: Digest") for h in head].index(True)
    assert ctx.extra["reply_headers"] == [("X-Script", "1")]
    assert kemi_auth.auth_challenge(context(core, request("REGISTER", URI, 5070)), "a.example", 0) == 1
    assert wire.sent[-1].data.startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert b"\r\nWWW-Authenticate: Digest realm=\"a.example\", nonce=" in wire.sent[-1].data
