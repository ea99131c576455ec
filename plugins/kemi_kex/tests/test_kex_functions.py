"""kex: KEMI setdebug/resetdebug, native cfg functions and statistics RPCs on real SIP bytes."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import kemi_kex
from kemi_core.api import Alias, Branch, Core, CoreConfig, ListenAddr, MsgContext, RecvInfo
from kemi_core.sip import parse_datagram
from kemi_core.testing import offline_core

OPTIONS = (b"OPTIONS sip:alice@example.com SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-kex1\r\n"
           b"From: <sip:bob@example.org>;tag=a1\r\nTo: <sip:alice@example.com>\r\n"
           b"Call-ID: kex-1@10.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           b"Content-Length: 0\r\n\r\n")


@pytest.fixture
def core() -> Core:
    cfg = CoreConfig(debug=2, listen=[ListenAddr("udp", "127.0.0.1", 5060)],
                     aliases=[Alias("proxy.example.com", None)], auto_aliases=False)
    core, _ = offline_core(("kex", kemi_kex), config=cfg, init=False)
    return core


@pytest.fixture
def ctx(core: Core) -> MsgContext:
    return core.new_context(parse_datagram(OPTIONS), RecvInfo("udp", "10.0.0.1", 5060, "127.0.0.1", 5060))


def cfg(core: Core, name: str) -> Any:
    return core.cfg_functions[name].func


def test_kemi_exports_are_kamailios(core: Core) -> None:
    exps = core.registry.module("kex")
    assert sorted(exps) == ["resetdebug", "setdebug"]
    assert [p.value for p in exps["setdebug"].params] == ["int"] and exps["resetdebug"].params == ()


def test_setdebug_and_resetdebug(core: Core, ctx: MsgContext) -> None:
    root = logging.getLogger("kemi")
    old = root.level
    try:
        assert core.registry.lookup("kex", "setdebug").func(ctx, 3) == 1  # type: ignore[union-attr]
        assert root.level == logging.DEBUG
        assert core.registry.lookup("kex", "setdebug").func(ctx, -1) == 1  # type: ignore[union-attr]
        assert root.level == logging.ERROR
        assert core.registry.lookup("kex", "resetdebug").func(ctx) == 1  # type: ignore[union-attr]
        assert root.level == logging.INFO  # core debug=2
    finally:
        root.setLevel(old)


def test_script_flags(core: Core, ctx: MsgContext) -> None:
    assert cfg(core, "issflagset")(ctx, 3) == -1
    assert cfg(core, "setsflag")(ctx, 3) == 1 and cfg(core, "issflagset")(ctx, 3) == 1
    assert ctx.extra["sflags"] == 8
    assert cfg(core, "resetsflag")(ctx, 3) == 1 and cfg(core, "issflagset")(ctx, 3) == -1
    assert cfg(core, "setsflag")(ctx, 40) == -1


def test_branch_flags(core: Core, ctx: MsgContext) -> None:
    ctx.branches.append(Branch(uri="sip:carol@example.net"))
    assert cfg(core, "setbflag")(ctx, 2) == 1 and ctx.bflags == 4
    assert cfg(core, "setbflag")(ctx, 1, 1) == 1 and ctx.branches[0].flags == 2
    assert cfg(core, "isbflagset")(ctx, 1, 1) == 1 and cfg(core, "isbflagset")(ctx, 1) == -1
    assert cfg(core, "resetbflag")(ctx, 2) == 1 and ctx.bflags == 0
    assert cfg(core, "setbflag")(ctx, 1, 5) == -1  # no such branch


def test_dsturi(core: Core, ctx: MsgContext) -> None:
    assert cfg(core, "isdsturiset")(ctx) == -1
    assert cfg(core, "setdsturi")(ctx, "sip:10.0.0.10:5070") == 1
    assert ctx.dst_uri == "sip:10.0.0.10:5070" and cfg(core, "isdsturiset")(ctx) == 1
    assert cfg(core, "setdsturi")(ctx, "not a uri") == -1
    assert cfg(core, "resetdsturi")(ctx) == 1 and ctx.dst_uri is None


def test_pv_printf(core: Core, ctx: MsgContext) -> None:
    assert cfg(core, "pv_printf")(ctx, "$var(x)", "from $fU to $rU") == 1
    assert core.script_vars["x"] == "from bob to alice"
    assert cfg(core, "pv_printf")(ctx, "$ru", "sip:$rU@10.0.0.2") == 1
    assert ctx.msg.ruri == "sip:alice@10.0.0.2"
    assert cfg(core, "avp_printf")(ctx, "$avp(a)", "$ci") == 1 and ctx.avps["a"] == ["kex-1@10.0.0.1"]
    assert cfg(core, "pv_printf")(ctx, "$ci", "x") == -1  # read-only


def test_is_myself(core: Core, ctx: MsgContext) -> None:
    assert cfg(core, "is_myself")(ctx, "sip:127.0.0.1") == 1  # no port: host only
    assert cfg(core, "is_myself")(ctx, "sip:127.0.0.1:5060") == 1
    assert cfg(core, "is_myself")(ctx, "sip:127.0.0.1:5099") == -1
    assert cfg(core, "is_myself")(ctx, "127.0.0.1") == 1
    assert cfg(core, "is_myself")(ctx, "sip:proxy.example.com") == 1
    assert cfg(core, "is_myself")(ctx, "$fu") == -1  # example.org is not us
    assert cfg(core, "is_myself")(ctx, "sip:10.9.9.9") == -1


def test_aliases_list_rpc(core: Core) -> None:
    rpc = core.rpc_commands
    assert rpc["core.aliases_list"].func(core, []) == [
        {"proto": "*", "address": "proxy.example.com", "port": "*"}]
