"""Running Lua callbacks: results, exit/drop, nested runs, errors, missing callbacks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import ReturnKind, ScriptDrop, ScriptExit, export
from kemi_core.testing import check_error_in_nested_run, check_nested_runs


@pytest.mark.parametrize("body, result", [
    ("", 1), ("return", 1), ("return true", 1), ("return false", -1), ("return 5", 5),
    ("return -3", -3), ("return 0", 0), ("return 2.0", 2), ("return 'text'", 1),
])
def test_route_results(core, make_engine, make_ctx, body, result):
    make_engine(f"function ksr_request_route() {body} end")
    assert core.run_route("ksr_request_route", make_ctx()) == result


@pytest.mark.parametrize("exit_call", ["KSR.x.exit()", "sr.x.exit()"])
def test_exit_stops_the_route_successfully(core, calls, make_engine, make_ctx, exit_call):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine(f"""function ksr_request_route()
  KSR.t.mark("before")
  {exit_call}
  KSR.t.mark("after")
  return -1
end
""")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert calls.args("mark") == [("before",)]
    assert not ctx.dropped
    assert ctx.fault is None


def test_exit_from_deep_lua_calls_and_loops(core, calls, make_engine, make_ctx):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine("""
local function inner(i) if i == 3 then KSR.x.exit() end KSR.t.mark("i" .. i) end
function ksr_request_route()
  for i = 1, 10 do inner(i) end
  KSR.t.mark("after loop")
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("mark") == [("i1",), ("i2",)]


def test_exit_is_a_lua_error_that_python_never_sees(core, calls, make_engine, make_ctx,
                                                    lua_eval):
    """The core's KSR.x.exit runs in Lua (the prelude's EXIT error, as Kamailio's app_lua)."""
    core.registry.add([calls.export("t", "mark", "s")])
    engine = make_engine("function ksr_request_route() KSR.x.exit() end")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert lua_eval(engine, "type(KSR.x.exit)") == "function"  # a Lua function, not Python's
    assert engine.run("ksr_request_route", make_ctx()) == 1  # run_route's int for an exit


def test_exit_with_arguments_is_refused_as_before(core, make_engine, make_ctx):
    engine = make_engine('function ksr_request_route() KSR.x.exit("now") end')
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == -1
    # at the script's line (not at the prelude's Lua exit wrapper)
    assert ctx.fault == (f"{engine.settings.scripts[0]}:1: KSR.x.exit(): expected 0 arguments, "
                         "got 1 (LuaArgError)")


def test_exit_caught_by_the_scripts_pcall_lets_the_route_go_on(core, calls, make_engine,
                                                                make_ctx):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine("""function ksr_request_route()
  local ok = pcall(KSR.x.exit)
  KSR.t.mark(tostring(ok))
  return 5
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 5
    assert calls.args("mark") == [("false",)]


def test_exit_at_the_top_of_a_script_fails_its_load(core, make_engine):
    from kemi_core.api import ScriptError

    with pytest.raises(ScriptError, match=r"\.lua: ScriptExit\(\)$"):
        make_engine("KSR.x.exit()\nfunction ksr_request_route() end")


def test_a_wrapped_exit_is_called_through_python(core, calls, make_engine, make_ctx):
    """A registry whose exports were wrapped (the debugger's cfgtrace) keeps its wrapper."""
    from kemi_core.api import flow_exports

    core.registry.add(flow_exports())

    def traced(exp: Any) -> Any:
        def func(ctx: Any, *args: Any) -> Any:
            calls.rec("traced " + exp.name, ctx)
            return exp.func(ctx, *args)
        return export(exp.module, exp.name, func, "", exp.returns)

    core.registry.wrap_all(traced)
    make_engine("function ksr_request_route() KSR.x.exit(); return -1 end")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.names() == ["traced exit"]


def test_drop_stops_the_route_and_marks_the_context(core, calls, make_engine, make_ctx):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine("""function ksr_request_route()
  KSR.t.mark("before")
  KSR.x.drop()
  KSR.t.mark("after")
end
""")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 0
    assert ctx.dropped
    assert calls.args("mark") == [("before",)]


def test_registry_exports_of_module_x_are_used_before_the_engines_own(core, calls, make_engine,
                                                                      make_ctx):
    def core_exit(ctx: Any) -> None:
        calls.rec("core exit", ctx)
        raise ScriptExit()

    def core_drop(ctx: Any) -> None:
        calls.rec("core drop", ctx)
        raise ScriptDrop()

    core.registry.add([export("x", "exit", core_exit, "", ReturnKind.NONE),
                       export("x", "drop", core_drop, "", ReturnKind.NONE),
                       calls.export("t", "mark", "s")])
    make_engine("""
function ksr_request_route() KSR.x.exit(); KSR.t.mark("no") end
function ksr_reply_route() KSR.x.drop(); KSR.t.mark("no") end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    ctx = make_ctx()
    assert core.run_route("ksr_reply_route", ctx) == 0 and ctx.dropped
    assert calls.names() == ["core exit", "core drop"]


def test_x_modf_is_variadic_and_calls_a_native_cfg_function(core, calls, make_engine, make_ctx,
                                                            caplog):
    from kemi_core.api import CfgFunction
    from kemi_core.testing import add_core_exports

    def cfg_fn(ctx: Any, n: int, text: str = "-") -> int:
        calls.rec("cfg", ctx, n, text)
        return 4

    add_core_exports(core)
    core.add_cfg_function(CfgFunction("t", "t_cfg", cfg_fn, 1, 2, (0,)))
    make_engine("""
function ksr_request_route() return KSR.x.modf("t_cfg", 16, "txt") end
function ksr_one() return sr.modf("t_cfg", "3") end
function ksr_none() return KSR.x.modf() end
function ksr_unknown() return KSR.x.modf("nosuch") end
""")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 4
    assert core.run_route("ksr_one", ctx) == 4
    assert calls.log == [("cfg", ctx, (16, "txt")), ("cfg", ctx, (3, "-"))]
    bad = make_ctx()
    assert core.run_route("ksr_none", bad) == -1
    assert "KSR.x.modf(str fname, ...): expected at least 1 argument, got 0" in bad.fault
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_unknown", make_ctx()) == -1  # modf's own "no such function"
    assert "nosuch" in caplog.text


def test_nested_runs_see_their_own_context_and_restore_the_outer_one(core, calls, make_engine,
                                                                     make_ctx):
    check_nested_runs(core, calls, make_ctx, lambda: make_engine("""
function ksr_request_route()
  KSR.t.who("request before")
  local r = KSR.tm.t_relay()
  KSR.t.who("request after " .. r)
  return r
end
function ksr_branch_one()
  KSR.t.who("branch")
  KSR.x.exit()
  KSR.t.who("branch after exit")
end
"""))


def test_an_error_in_a_nested_run_does_not_end_the_outer_route(core, calls, make_engine, make_ctx):
    check_error_in_nested_run(core, calls, make_ctx, lambda: make_engine("""
function ksr_request_route()
  local r = KSR.tm.t_relay()
  KSR.t.mark("after relay " .. r)
end
function ksr_branch_bad() error("branch broke") end
"""))


def test_lua_runtime_error_is_logged_with_line_and_traceback(core, make_engine, make_ctx, caplog):
    engine = make_engine("""-- line 1
local function helper()
  local t = nil
  return t.field          -- line 4
end
function ksr_request_route()
  helper()                -- line 7
end
""")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR, logger="kemi.app_lua"):
        assert core.run_route("ksr_request_route", ctx) == -1
    path = engine.settings.scripts[0]
    assert ctx.fault == f"{path}:4: attempt to index a nil value (local 't')"
    assert "stack traceback:" in caplog.text
    assert f"{path}:7: in function 'ksr_request_route'" in caplog.text
    # the worker goes on: the same engine runs the next message
    assert core.run_route("ksr_request_route", make_ctx()) == -1


def test_faults_keep_their_traceback_between_exits_and_drops(core, calls, make_engine,
                                                             make_ctx, caplog):
    """KSR.x.exit/drop end a route without a traceback (the message handler skips it); a
    fault after them, Lua's or an export's, still has its own line and traceback."""
    def broken(ctx: Any) -> None:
        raise ValueError("export broke")

    core.registry.add([export("t", "broken", broken, "", ReturnKind.NONE)])
    engine = make_engine("""-- line 1
function ksr_request_route() KSR.x.exit() end
function ksr_drop() KSR.x.drop() end
function ksr_lua_fault()
  error("lua broke")      -- line 5
end
function ksr_export_fault()
  KSR.t.broken()          -- line 8
end
""")
    path = engine.settings.scripts[0]
    for route, line, text in (("ksr_lua_fault", 5, "lua broke"),
                              ("ksr_export_fault", 8, "export broke")):
        assert core.run_route("ksr_request_route", make_ctx()) == 1
        dropped = make_ctx()
        assert core.run_route("ksr_drop", dropped) == 0 and dropped.dropped
        ctx = make_ctx()
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert core.run_route(route, ctx) == -1
        assert ctx.fault is not None and ctx.fault.startswith(f"{path}:{line}: ")
        assert text in ctx.fault and "stack traceback:" in caplog.text


def test_missing_callback_is_logged_and_raised(core, make_engine, make_ctx, caplog):
    engine = make_engine("function ksr_request_route() end")
    assert engine.has_route("ksr_request_route")
    assert not engine.has_route("ksr_failure_route_one")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_failure_route_one", ctx) == -1
    assert "function ksr_failure_route_one() is not defined" in caplog.text
    assert ctx.fault is not None and "ksr_failure_route_one" in ctx.fault


def test_a_global_that_is_not_a_function_is_not_a_route(core, make_engine, make_ctx):
    engine = make_engine("function ksr_request_route() end\nksr_reply_route = 5\n")
    assert not engine.has_route("ksr_reply_route")
    ctx = make_ctx()
    assert core.run_route("ksr_reply_route", ctx) == -1 and ctx.fault is not None


def test_a_route_defined_or_removed_at_run_time_is_seen(core, make_engine, make_ctx):
    # has_route's answers are kept per script load (asked for every reply); a function
    # assigned to a new global later, or a route that went away, is still seen.
    engine = make_engine("""function ksr_request_route()
  if ksr_reply_route == nil then
    ksr_reply_route = function() return 7 end
  else
    ksr_reply_route = nil
  end
end
""")
    assert not engine.has_route("ksr_reply_route")
    core.run_route("ksr_request_route", make_ctx())
    assert engine.has_route("ksr_reply_route")
    assert core.run_route("ksr_reply_route", make_ctx()) == 7
    core.run_route("ksr_request_route", make_ctx())  # removes it
    assert core.run_route("ksr_reply_route", make_ctx()) == -1  # not defined: a fault
    assert not engine.has_route("ksr_reply_route")


def test_a_script_with_its_own_globals_metatable_keeps_it(core, make_engine, make_ctx):
    engine = make_engine("""
local declared = {}
setmetatable(_G, {__newindex = function(t, k, v) declared[#declared + 1] = k; rawset(t, k, v) end})
function ksr_request_route()
  fresh = function() return 3 end
  return #declared
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 2  # ksr_request_route, fresh
    assert engine.has_route("fresh")
    assert core.run_route("fresh", make_ctx()) == 3
