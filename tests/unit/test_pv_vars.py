"""$var, $shv, $avp, $xavp, $sf, $env: where values live and how $null behaves."""

from __future__ import annotations

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.pv import PvError, compile_format, get_pv, set_pv
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import parse_datagram

OPTIONS = (
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKopt1\r\n"
    b"To: <sip:127.0.0.1>\r\n"
    b"From: <sip:probe@10.0.0.1>;tag=t1\r\n"
    b"Call-ID: opt-1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@pytest.fixture
def core() -> Core:
    return Core(CoreConfig())


def new_ctx(core: Core) -> MsgContext:
    return core.new_context(parse_datagram(OPTIONS), RecvInfo("udp", "10.0.0.1", 5060,
                                                              "127.0.0.1", 5060))


def test_var_is_per_process_and_never_null(core: Core) -> None:
    first = new_ctx(core)
    assert get_pv(first, "$var(x)") == 0
    set_pv(first, "$var(x)", "abc")
    assert core.script_vars["x"] == "abc"
    second = new_ctx(core)
    assert get_pv(second, "$var(x)") == "abc"  # survives to the next message
    set_pv(second, "$var(x)", None)
    assert get_pv(second, "$var(x)") == 0


def test_shv(core: Core) -> None:
    ctx = new_ctx(core)
    assert get_pv(ctx, "$shv(cnt)") == 0
    set_pv(ctx, "$shv(cnt)", 3)
    assert core.shared_vars["cnt"] == 3
    assert get_pv(new_ctx(core), "$shv(cnt)") == 3


def test_avp_stack(core: Core) -> None:
    ctx = new_ctx(core)
    assert get_pv(ctx, "$avp(dst)") is None
    set_pv(ctx, "$avp(dst)", "a")
    set_pv(ctx, "$avp(s:dst)", "b")
    assert get_pv(ctx, "$avp(dst)") == "b"
    assert ctx.avps["dst"] == ["b", "a"]
    assert get_pv(ctx, "$(avp(dst)[1])") == "a"
    assert get_pv(ctx, "$(avp(dst)[-1])") == "a"
    assert get_pv(ctx, "$(avp(dst)[2])") is None
    assert get_pv(ctx, "$(avp(dst)[*])") == "b,a"
    set_pv(ctx, "$avp(dst)", None)
    assert get_pv(ctx, "$avp(dst)") is None
    assert get_pv(new_ctx(core), "$avp(dst)") is None  # per message


def test_xavp_items_and_fields(core: Core) -> None:
    ctx = new_ctx(core)
    set_pv(ctx, "$xavp(a=>x)", "a-0-x")
    set_pv(ctx, "$xavp(a[0]=>y)", "a-0-y")
    set_pv(ctx, "$xavp(a=>x)", "a-1-x")
    set_pv(ctx, "$xavp(a[0]=>y)", "a-1-y")
    assert get_pv(ctx, "$xavp(a=>x)") == "a-1-x"
    assert get_pv(ctx, "$xavp(a[0]=>y)") == "a-1-y"
    assert get_pv(ctx, "$xavp(a[1]=>x)") == "a-0-x"
    assert get_pv(ctx, "$xavp(a[1]=>y)") == "a-0-y"
    assert get_pv(ctx, "$xavp(a[2]=>y)") is None
    assert get_pv(ctx, "$xavp(a=>z)") is None
    assert get_pv(ctx, "$xavp(a)") is not None
    assert ctx.xavps["a"] == [{"x": "a-1-x", "y": "a-1-y"}, {"x": "a-0-x", "y": "a-0-y"}]
    set_pv(ctx, "$xavp(a[0]=>y)", None)
    assert get_pv(ctx, "$xavp(a=>y)") is None
    set_pv(ctx, "$xavp(a[0])", None)
    assert get_pv(ctx, "$xavp(a=>x)") == "a-0-x"
    set_pv(ctx, "$xavp(a)", None)
    assert "a" not in ctx.xavps
    with pytest.raises(PvError):
        set_pv(ctx, "$xavp(a)", "v")
    with pytest.raises(PvError):
        set_pv(ctx, "$xavp(nope[3]=>f)", "v")


def test_script_flags_pv(core: Core) -> None:
    ctx = new_ctx(core)
    assert get_pv(ctx, "$sf") == 0
    set_pv(ctx, "$sf", 6)
    assert get_pv(ctx, "$sf") == 6


def test_env(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_PV_TEST", "yes")
    ctx = new_ctx(core)
    assert get_pv(ctx, "$env(KEMI_PV_TEST)") == "yes"
    assert get_pv(ctx, "$env(KEMI_PV_TEST_MISSING)") is None


def test_var_in_format_with_transformation(core: Core) -> None:
    ctx = new_ctx(core)
    set_pv(ctx, "$var(name)", "kamailio")
    assert compile_format("$(var(name){s.len}) $(var(name){s.substr,0,3})")(ctx) == "8 kam"


@pytest.mark.parametrize("bad", ["$var()", "$var(a b)", "$avp(x y)", "$xavp(=>f)",
                                 "$xavp(a[x]=>f)"])
def test_bad_variable_names(bad: str) -> None:
    from kemi_core.pv import parse_pv

    with pytest.raises(PvError):
        parse_pv(bad)
