"""KSR in Lua: lazy resolution and caching, parameter kinds, return kinds, unknown names."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import ReturnKind, export


def _recorder(calls: Any, name: str, result: Any = 1) -> Any:
    def fn(ctx: Any, *args: Any) -> Any:
        calls.rec(name, ctx, *args)
        return result
    return fn


def test_module_and_function_resolved_on_first_use_then_cached(core, calls, make_engine, make_ctx, lua_eval):
    core.registry.add([export("t", "f", _recorder(calls, "t.f"), "is"),
                       export("", "corefn", _recorder(calls, "corefn"), "s")])
    engine = make_engine("""
function ksr_request_route()
  KSR.t.f(1, "a")
  KSR.corefn("c")
end
""")
    assert lua_eval(engine, "rawget(KSR, 't')") is None
    assert lua_eval(engine, "rawget(KSR, 'corefn')") is None
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert lua_eval(engine, "type(rawget(KSR, 't'))") == "table"
    assert lua_eval(engine, "rawget(KSR.t, 'f') ~= nil")
    assert lua_eval(engine, "rawget(KSR, 'corefn') ~= nil")
    # the cached entry is the very object later calls use: a plain table read
    assert lua_eval(engine, "rawget(KSR.t, 'f') == KSR.t.f")
    assert calls.log == [("t.f", ctx, (1, "a")), ("corefn", ctx, ("c",))]
    # a second run calls the cached function; the resolver is not asked again
    resolved = dict(engine.resolver._bound)
    core.run_route("ksr_request_route", make_ctx())
    assert engine.resolver._bound == resolved
    assert len(calls.log) == 4


@pytest.mark.parametrize("kinds", ["", "i", "s", "ii", "is", "si", "ss", "iis", "sis", "isis",
                                   "sssss", "iiiii", "isisis", "ssssss", "iiiiii", "siisss"])
def test_every_param_kind_combination(core, calls, make_engine, make_ctx, kinds):
    core.registry.add([export("t", "f", _recorder(calls, "f"), kinds)])
    lua_args = ", ".join(str(i + 1) if k == "i" else f'"s{i + 1}"' for i, k in enumerate(kinds))
    make_engine(f"function ksr_request_route() KSR.t.f({lua_args}) end")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    expected = tuple(i + 1 if k == "i" else f"s{i + 1}" for i, k in enumerate(kinds))
    (got,) = calls.args("f")
    assert got == expected
    assert [type(v) for v in got] == [int if k == "i" else str for k in kinds]


def test_argument_conversions(core, calls, make_engine, make_ctx):
    core.registry.add([export("t", "ii", _recorder(calls, "ii"), "ii"),
                       export("t", "ss", _recorder(calls, "ss"), "ss"),
                       export("t", "six", _recorder(calls, "six"), "isisss")])
    make_engine("""
function ksr_request_route()
  KSR.t.ii(2.0, "42")          -- integral float and a string of digits become ints
  KSR.t.ss(7, 2.5)             -- numbers become strings the way tostring writes them
  KSR.t.six(" 3 ", 4, 5.0, "x", 1e20, "")
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("ii") == [(2, 42)]
    assert calls.args("ss") == [("7", "2.5")]
    assert calls.args("six") == [(3, "4", 5, "x", "1e+20", "")]


@pytest.mark.parametrize("call, message", [
    ("KSR.t.is(1)", "KSR.t.is(int a, str b): expected 2 arguments, got 1"),
    ("KSR.t.is(1, 'x', 3)", "KSR.t.is(int a, str b): expected 2 arguments, got 3"),
    ("KSR.t.is(1.5, 'x')", "KSR.t.is(int a, str b): argument 1 must be an integer, got number 1.5"),
    ("KSR.t.is('abc', 'x')", "argument 1 must be an integer, got string 'abc'"),
    ("KSR.t.is(1, nil)", "KSR.t.is(int a, str b): argument 2 must be a string, got nil"),
    ("KSR.t.is(true, 'x')", "argument 1 must be an integer, got boolean"),
    ("KSR.t.is(1, {})", "argument 2 must be a string"),
    ("KSR.t.none(1)", "KSR.t.none(): expected 0 arguments, got 1"),
    ("KSR.t.six(1, 2, 3, 4, 5)", "KSR.t.six(int p1, int p2, int p3, int p4, int p5, str p6): "
                                 "expected 6 arguments, got 5"),
])
def test_wrong_arguments_are_a_lua_error_naming_the_signature(core, calls, make_engine, make_ctx,
                                                              caplog, call, message):
    def is_fn(ctx: Any, a: int, b: str) -> int:
        calls.rec("is", ctx, a, b)
        return 1

    core.registry.add([export("t", "is", is_fn, "is"),
                       export("t", "none", _recorder(calls, "none"), ""),
                       export("t", "six", lambda ctx, *a: 1, "iiiiis")])
    engine = make_engine(f"""function ksr_request_route()
  -- the bad call is on line 3
  {call}
  KSR.t.none()
end
""")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", ctx) == -1
    assert message in ctx.fault
    assert ctx.fault.startswith(engine.settings.scripts[0] + ":3: ")
    assert calls.names() == []  # the call failed and nothing after it ran
    assert message in caplog.text


def test_return_kinds(core, make_engine, make_ctx, lua_eval):
    core.registry.add([
        export("r", "int", lambda ctx: 5, "", ReturnKind.INT),
        export("r", "neg", lambda ctx: -2, "", ReturnKind.INT),
        export("r", "yes", lambda ctx: True, "", ReturnKind.BOOL),
        export("r", "no", lambda ctx: 0, "", ReturnKind.BOOL),
        export("r", "xs", lambda ctx: "text", "", ReturnKind.XVAL),
        export("r", "xi", lambda ctx: 12, "", ReturnKind.XVAL),
        export("r", "xnil", lambda ctx: None, "", ReturnKind.XVAL),
        export("r", "none", lambda ctx: "ignored", "", ReturnKind.NONE),
    ])
    engine = make_engine("""
result = {}
function ksr_request_route()
  local v = KSR.r.int(); result.int = math.type(v) .. ":" .. v
  result.neg = KSR.r.neg()
  local y, n = KSR.r.yes(), KSR.r.no()
  result.bool = type(y) .. ":" .. tostring(y) .. "," .. type(n) .. ":" .. tostring(n)
  result.xs = KSR.r.xs()
  local xi = KSR.r.xi(); result.xi = math.type(xi) .. ":" .. xi
  result.xnil = KSR.r.xnil() == nil
  result.none = select("#", KSR.r.none())
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    res = lua_eval(engine, "result")
    assert res["int"] == "integer:5"
    assert res["neg"] == -2
    assert res["bool"] == "boolean:true,boolean:false"
    assert res["xs"] == "text"
    assert res["xi"] == "integer:12"
    assert res["xnil"] is True
    assert res["none"] == 0


def test_unknown_module_or_function_logs_once_and_fails_with_the_line(core, make_engine, make_ctx,
                                                                      caplog):
    core.registry.add([export("t", "f", lambda ctx: 1, "")])
    make_engine("""function ksr_request_route()
  KSR.t.f()
  KSR.t.nosuch()
end
function ksr_other()
  KSR.nomod.f()
end
""")
    for _ in range(3):
        ctx = make_ctx()
        with caplog.at_level(logging.ERROR):
            assert core.run_route("ksr_request_route", ctx) == -1
        assert ctx.fault.endswith(":3: attempt to call a nil value (field 'nosuch')")
    assert caplog.text.count("KSR.t.nosuch is not a known KEMI function") == 1
    ctx = make_ctx()
    assert core.run_route("ksr_other", ctx) == -1
    assert ":6: attempt to index a nil value (field 'nomod')" in ctx.fault
    assert caplog.text.count("KSR.nomod is not a known KEMI function or module") == 1


def test_nothing_is_cached_for_unknown_names(core, make_engine, make_ctx, lua_eval):
    engine = make_engine("function ksr_request_route() local x = KSR.later end")
    core.run_route("ksr_request_route", make_ctx())
    assert lua_eval(engine, "rawget(KSR, 'later')") is None
    core.registry.add([export("", "later", lambda ctx: 1, "")])
    assert lua_eval(engine, "KSR.later ~= nil")


def test_legacy_sr_object_maps_to_the_registry(core, calls, make_engine, make_ctx):
    core.registry.add([
        export("maxfwd", "process_maxfwd", _recorder(calls, "maxfwd", 2), "i"),
        export("pv", "sets", _recorder(calls, "pv.sets"), "ss"),
        export("pv", "seti", _recorder(calls, "pv.seti"), "si"),
        export("pv", "get", lambda ctx, name: "val:" + name, "s", ReturnKind.XVAL),
        export("pv", "unset", _recorder(calls, "pv.unset"), "s"),
        export("", "info", _recorder(calls, "info"), "s"),
        export("", "err", _recorder(calls, "err"), "s"),
        export("", "dbg", _recorder(calls, "dbg"), "s"),
        export("", "warn", _recorder(calls, "warn"), "s"),
    ])
    make_engine("""function ksr_request_route()
  if sr.maxfwd.process_maxfwd(10) < 0 then return -5 end
  sr.pv.sets("$du", "sip:127.0.0.1:5080")
  sr.pv.seti("$var(x)", 3)
  sr.pv.unset("$var(x)")
  sr.info(sr.pv.get("$ru"))
  sr.err("e"); sr.dbg("d"); sr.warn("w")
  sr.log("info", "via log"); sr.log("error", "bad")
  return 7
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 7
    assert calls.names() == ["maxfwd", "pv.sets", "pv.seti", "pv.unset", "info", "err", "dbg",
                             "warn", "info", "err"]
    assert calls.args("info") == [("val:$ru",), ("via log",)]
    assert calls.args("pv.seti") == [("$var(x)", 3)]


def test_sr_log_with_an_unknown_level_is_an_error(core, make_engine, make_ctx):
    core.registry.add([export("", "info", lambda ctx, s: 1, "s")])
    make_engine("function ksr_request_route() sr.log('loud', 'x') end")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == -1
    assert "sr.log(str level, str msg)" in ctx.fault


def test_python_exception_in_an_export_is_logged_with_line_and_traceback(core, make_engine,
                                                                         make_ctx, caplog):
    def broken(ctx: Any) -> int:
        raise KeyError("missing-thing")

    core.registry.add([export("t", "broken", broken, "")])
    engine = make_engine("function ksr_request_route()\n\n  KSR.t.broken()\nend\n")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", ctx) == -1
    assert ctx.fault.startswith(engine.settings.scripts[0] + ":3: ")
    assert "missing-thing" in ctx.fault
    assert "KeyError" in caplog.text and "stack traceback" in caplog.text
