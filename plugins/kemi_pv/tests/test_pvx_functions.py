"""KSR.pvx and pv's native functions on a real SIP request."""

from __future__ import annotations

from typing import Any

import pytest

import kemi_pv
from kemi_core.api import Core, CoreConfig, MsgContext, RecvInfo, get_pv, set_pv
from kemi_core.sip import parse_datagram
from kemi_core.testing import ModuleLoader

INVITE = (b"INVITE sip:alice@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-pv1\r\n"
          b"From: <sip:bob@example.org>;tag=a1\r\nTo: <sip:alice@example.com>\r\n"
          b"Call-ID: pv-1@10.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
          b"Content-Length: 0\r\n\r\n")


@pytest.fixture
def core() -> Core:
    core = Core(CoreConfig())
    loader = ModuleLoader(core, available={})
    loader.register("pv", kemi_pv)
    core.set_param("pv", "shvset", "debug=i:1")
    core.set_param("pv", "shvset", "gw=s:sip:10.10.10.10")
    core.set_param("pv", "varset", "init=i:7")
    loader.init_all()
    return core


@pytest.fixture
def ctx(core: Core) -> MsgContext:
    return core.new_context(parse_datagram(INVITE), RecvInfo("udp", "10.0.0.1", 5060, "127.0.0.1", 5060))


@pytest.fixture
def px(core: Core, ctx: MsgContext) -> Any:
    class Pvx:
        def __getattr__(self, name: str) -> Any:
            exp = core.registry.lookup("pvx", name)
            assert exp is not None, name
            return lambda *args: exp.func(ctx, *args)
    return Pvx()


def test_exports_and_kinds(core: Core) -> None:
    exps = core.registry.module("pvx")
    assert len(exps) == 71
    assert exps["xavp_get"].returns.value == "xval" and exps["xavp_seti"].returns.value == "int"
    assert [p.value for p in exps["xavp_copy_dst"].params] == ["str", "int", "str", "int"]
    assert core.registry.module("pv") == {}  # KSR.pvx, not KSR.pv (that one is core)


def test_modparams_and_var_shv(core: Core, ctx: MsgContext, px: Any) -> None:
    assert px.shv_get("debug") == 1 and px.shv_get("gw") == "sip:10.10.10.10"
    assert px.var_get("init") == 7
    assert px.var_seti("n", 3) == 1 and get_pv(ctx, "$var(n)") == 3
    assert px.var_sets("s", "x") == 1 and px.var_get("s") == "x"
    assert px.var_get("never") is None
    assert px.shv_seti("k", 9) == 1 and get_pv(ctx, "$shv(k)") == 9
    assert px.shv_sets("k", "v") == 1 and px.shv_get("k") == "v" and px.shv_get("none") is None
    assert core.rpc_commands["pv.shvSet"].func(core, ["k", "int", "12"]) == "Ok"
    assert core.rpc_commands["pv.shvGet"].func(core, ["k"]) == [{"name": "k", "type": "int", "value": 12}]


def test_avp(ctx: MsgContext, px: Any) -> None:
    assert px.avp_is_null("a") == 1 and px.avp_get("a") is None
    assert px.avp_gete("a") == "" and px.avp_getw("a") == "<null>"
    assert px.avp_seti("a", 1) == 1 and px.avp_sets("a", "two") == 1
    assert px.avp_get("a") == "two" and get_pv(ctx, "$(avp(a)[1])") == 1
    assert px.avp_is_null("a") == -1
    assert px.avp_rm("a") == 1 and px.avp_is_null("a") == 1 and px.avp_rm("a") == -1


def test_xavp_values_and_children(ctx: MsgContext, px: Any) -> None:
    assert px.xavp_is_null("x") == 1 and px.xavp_get("x") is None
    assert px.xavp_gete("x") == "" and px.xavp_getw("x") == "<null>"
    assert px.xavp_seti("x", 5) == 1 and px.xavp_get("x") == 5
    assert px.xavp_sets("x", "newer") == 1 and px.xavp_get("x") == "newer"
    assert len(ctx.xavps["x"]) == 2
    assert px.xavp_rm("x") == 1 and px.xavp_is_null("x") == 1
    assert px.xavp_child_seti("r", "a", 1) == 1 and px.xavp_child_sets("r", "b", "bee") == 1
    assert get_pv(ctx, "$xavp(r=>a)") == 1 and px.xavp_child_get("r", "b") == "bee"
    assert px.xavp_get("r") == "<<xavp:r>>"
    assert px.xavp_child_gete("r", "z") == "" and px.xavp_child_getw("r", "z") == "<null>"
    assert px.xavp_child_is_null("r", "z") == 1 and px.xavp_child_is_null("r", "a") == -1
    assert px.xavp_child_rm("r", "a") == 1 and px.xavp_child_rm("r", "a") == -1
    set_pv(ctx, "$xavp(r=>c)", "core-set")  # the core PV and pvx share storage
    assert px.xavp_child_get("r", "c") == "core-set" and px.xavp_child_get("r", "b") is None
    assert px.xavp_seti("v", 1) == 1 and px.xavp_child_seti("v", "a", 1) == -1


def test_xavi_case_insensitive_and_xavu_unique(ctx: MsgContext, px: Any) -> None:
    assert px.xavi_child_seti("WhatEver", "FoO", 10) == 1
    assert px.xavi_child_get("whatever", "foo") == 10 and px.xavi_is_null("WHATEVER") == -1
    assert px.xavi_seti("Other", 1) == 1 and px.xavi_get("OTHER") == 1 and px.xavi_rm("other") == 1
    assert px.pv_xavi_print() == 1
    assert px.xavu_seti("u", 1) == 1 and px.xavu_sets("u", "two") == 1 and px.xavu_get("u") == "two"
    assert px.xavu_gete("none") == "" and px.xavu_getw("none") == "<null>"
    assert px.xavu_rm("u") == 1 and px.xavu_is_null("u") == 1
    assert px.xavu_child_seti("c", "n", 1) == 1 and px.xavu_child_sets("c", "n", "s") == 1
    assert px.xavu_child_get("c", "n") == "s" and px.xavu_child_is_null("c", "n") == -1
    assert px.xavu_child_gete("c", "q") == "" and px.xavu_child_getw("c", "q") == "<null>"
    assert px.xavu_child_rm("c", "n") == 1 and px.xavu_child_rm("c", "n") == -1
    assert px.xavu_params_explode("a=b;c=d", "p") == 1
    assert px.xavu_params_implode("p", "$var(o)") == 1 and get_pv(ctx, "$var(o)") == "c=d;a=b;"
    assert px.pv_xavu_print() == 1


def test_params_explode_implode(ctx: MsgContext, px: Any) -> None:
    assert px.xavp_params_explode("a=b;c=d;e=f", "x") == 1
    assert get_pv(ctx, "$xavp(x=>c)") == "d"
    assert px.xavp_params_implode("x", "$var(out)") == 1
    assert get_pv(ctx, "$var(out)") == "e=f;c=d;a=b;"
    assert px.xavp_params_implode("none", "$var(out)") == -1
    assert px.xavp_params_explode(";;", "y") == -1


def test_slist_explode(ctx: MsgContext, px: Any) -> None:
    assert px.xavp_slist_explode("a=b; c=d;", "=;", "t", "x") == 1
    assert ctx.xavps["x"][0]["v"] == ["a", "b", "c", "d"] and get_pv(ctx, "$xavp(x=>v)") == "a"
    assert px.xavp_slist_explode(";;", ";", "", "y") == -1


def test_var_xavp_copies_and_print(core: Core, ctx: MsgContext, px: Any) -> None:
    core.script_vars.clear()
    px.var_seti("temp", 3)
    px.var_sets("foo", "foo indeed")
    assert px.pv_var_to_xavp("temp", "ok") == 1 and ctx.xavps["ok"] == [{"temp": 3}]
    assert px.pv_var_to_xavp("*", "ok") == 1 and ctx.xavps["ok"] == [{"temp": 3, "foo": "foo indeed"}]
    assert px.pv_var_to_xavp("missing", "ok") == -1
    set_pv(ctx, "$xavp(bar=>x1)", 1)
    set_pv(ctx, "$xavp(bar[0]=>x2)", "two")
    assert px.pv_xavp_to_var("bar") == 1 and px.var_get("x1") == 1 and px.var_get("x2") == "two"
    assert px.pv_xavp_to_var("nope") == -1
    assert px.pv_xavp_print() == 1


def test_xavp_copy(ctx: MsgContext, px: Any) -> None:
    for i in range(3):
        set_pv(ctx, "$xavp(a=>x)", f"a-{i}-x")
    assert [i["x"] for i in ctx.xavps["a"]] == ["a-2-x", "a-1-x", "a-0-x"]
    assert px.xavp_copy("a", 2, "b") == 1 and px.xavp_copy("a", 0, "b") == 1
    assert [i["x"] for i in ctx.xavps["b"]] == ["a-0-x", "a-2-x"]
    ctx.xavps["b"][0]["x"] = "changed"
    assert ctx.xavps["a"][2]["x"] == "a-0-x"  # a deep copy
    assert px.xavp_copy_dst("a", 1, "b", 0) == 1 and ctx.xavps["b"][0]["x"] == "a-1-x"
    assert px.xavp_copy_dst("a", 1, "b", 5) == -1 and px.xavp_copy("a", 9, "b") == -1


def test_evalx(core: Core, ctx: MsgContext, px: Any) -> None:
    px.var_sets("x", "test")
    px.var_sets("y", "$var(x)")
    assert px.evalx("$var(z)", "$var(y) one") == 1 and px.var_get("z") == "test one"
    assert px.evalx("$ci", "x") == -1


def test_sbranch(core: Core, ctx: MsgContext, px: Any) -> None:
    assert px.sbranch_append() == -1  # empty static branch
    set_pv(ctx, "$sbranch(uri)", "sip:127.0.0.1:5080")
    set_pv(ctx, "$sbranch(dst_uri)", "sip:127.0.0.1:5090")
    set_pv(ctx, "$sbranch(send_socket)", "udp:127.0.0.1:5060")
    set_pv(ctx, "$sbranch(flags)", 4)
    assert get_pv(ctx, "$sbranch(uri)") == "sip:127.0.0.1:5080"
    assert px.sbranch_append() == 1
    b = ctx.branches[0]
    assert (b.uri, b.dst_uri, b.send_socket, b.flags) == (
        "sip:127.0.0.1:5080", "sip:127.0.0.1:5090", "udp:127.0.0.1:5060", 4)
    assert px.sbranch_set_ruri() == 1
    assert ctx.msg.ruri == "sip:127.0.0.1:5080" and ctx.dst_uri == "sip:127.0.0.1:5090"
    assert ctx.bflags == 4 and ctx.send_socket == "udp:127.0.0.1:5060"
    assert b"INVITE sip:127.0.0.1:5080 SIP/2.0" in ctx.msg.to_bytes()
    assert px.sbranch_reset() == 1 and get_pv(ctx, "$sbranch(uri)") is None


def test_native_functions(core: Core, ctx: MsgContext) -> None:
    f = {name: fn.func for name, fn in core.cfg_functions.items()}
    core.script_vars["s"] = "text"
    core.script_vars["i"] = 4
    assert f["pv_isset"](ctx, "$var(s)") == 1 and f["pv_isset"](ctx, "$avp(none)") == -1
    assert f["is_int"](ctx, "$var(i)") == 1 and f["is_int"](ctx, "$var(s)") == -1
    assert f["typeof"](ctx, "$var(s)", "str") == 1 and f["typeof"](ctx, "$avp(none)", "null") == 1
    assert f["not_empty"](ctx, "$var(s)") == 1 and f["not_empty"](ctx, "$var(i)") == -1
    assert f["xavp_params_explode"](ctx, "a=$var(s);b=2", "p") == 1
    assert ctx.xavps["p"][0] == {"a": "text", "b": "2"}
    assert f["xavp_child_seti"](ctx, "p", "n", "$var(i)") == 1 and ctx.xavps["p"][0]["n"] == 4
    assert f["xavp_child_sets"](ctx, "p", "m", "Count: $var(i)") == 1
    assert f["xavp_params_implode"](ctx, "p", "$var(o)") == 1
    assert core.script_vars["o"] == "m=Count: 4;n=4;b=2;a=text;"
    assert f["xavp_child_rm"](ctx, "p", "m") == 1 and f["xavp_rm"](ctx, "p") == 1
    assert f["pv_unset"](ctx, "$var(s)") == 1 and core.script_vars["s"] == 0
    assert f["pv_evalx"](ctx, "$var(e)", "$ci") == 1 and core.script_vars["e"] == "pv-1@10.0.0.1"
    assert f["xavp_slist_explode"](ctx, "a,b", ",", "", "l") == 1
    assert f["xavp_copy"](ctx, "l", "0", "l2") == 1 and f["xavp_copy"](ctx, "l", "0", "l2", "0") == 1
    assert f["pv_var_to_xavp"](ctx, "i", "vx") == 1 and f["pv_xavp_to_var"](ctx, "vx") == 1
    for name in ("sbranch_reset", "sbranch_append", "sbranch_set_ruri", "pv_xavp_print"):
        assert name in f
