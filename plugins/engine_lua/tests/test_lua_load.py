"""Loading and checking scripts, multiple scripts, reload, Lua versions."""

from __future__ import annotations

import pytest

from kemi_core.api import ModuleError, ScriptError, export
from kemi_engine_lua import LuaEngine, LuaSettings
from kemi_engine_lua.runtime import LUA_MODULES, lupa_module


def _engine(core, *paths: str, **kw) -> LuaEngine:
    """An engine, made the core's active one (core.run_route runs it)."""
    engine = LuaEngine(core, LuaSettings(scripts=paths, **kw))
    core.engine = engine
    return engine


def test_syntax_error_names_file_and_line(core, write_script):
    path = write_script("function ksr_request_route()\n  if x then\nend\n")
    with pytest.raises(ScriptError) as err:
        _engine(core, path).load()
    assert str(err.value).startswith(f"{path}:4: ")
    assert "'end' expected" in str(err.value)


def test_runtime_error_at_load_names_file_and_line(core, write_script):
    path = write_script("function ksr_request_route() end\n\nerror('top level failure')\n")
    with pytest.raises(ScriptError) as err:
        _engine(core, path).load()
    assert str(err.value) == f"{path}:3: top level failure"


def test_python_error_at_load_names_file_and_line(core, write_script):
    path = write_script("function ksr_request_route() end\nKSR.t.needs_int('x')\n")
    core.registry.add([export("t", "needs_int", lambda ctx, n: 1, "i")])
    with pytest.raises(ScriptError) as err:
        _engine(core, path).load()
    assert str(err.value).startswith(f"{path}:2: KSR.t.needs_int(int n): argument 1")


def test_missing_request_route_is_a_script_error(core, write_script):
    path = write_script("function ksr_reply_route() end\n")
    with pytest.raises(ScriptError, match="does not define function ksr_request_route"):
        _engine(core, path).load()


def test_missing_file_is_a_script_error(core, tmp_path):
    path = str(tmp_path / "nope.lua")
    with pytest.raises(ScriptError, match="nope.lua: Lua script not found"):
        _engine(core, path).load()


def test_no_script_at_all_is_a_script_error(core):
    with pytest.raises(ScriptError, match="no script to load"):
        _engine(core).load()


def test_several_scripts_load_in_order_into_one_runtime(core, write_script, make_ctx):
    lib = write_script("function helper() return 42 end\nORDER = 'lib'\n", "lib.lua")
    main = write_script("ORDER = ORDER .. ',main'\nfunction ksr_request_route() return helper() end\n",
                        "main.lua")
    engine = _engine(core, lib, main)
    engine.load()
    assert core.run_route("ksr_request_route", make_ctx()) == 42
    assert engine.state is not None and engine.state.runtime.eval("ORDER") == "lib,main"


def test_reload_picks_up_the_new_script(core, write_script, make_ctx):
    path = write_script("function ksr_request_route() return 1 end\n")
    engine = _engine(core, path)
    engine.load()
    old_state = engine.state
    write_script("function ksr_request_route() return 2 end\n")
    engine.reload()
    assert engine.state is not old_state
    assert core.run_route("ksr_request_route", make_ctx()) == 2


@pytest.mark.parametrize("broken", [
    "function ksr_request_route( return 2 end\n",       # syntax error
    "function ksr_reply_route() end\n",                  # no request route
    "error('boom at load')\n",                           # runtime error at load
])
def test_broken_reload_keeps_the_old_script(core, write_script, make_ctx, broken):
    path = write_script("function ksr_request_route() return 1 end\n")
    engine = _engine(core, path)
    engine.load()
    old_state = engine.state
    write_script(broken)
    with pytest.raises(ScriptError):
        engine.reload()
    assert engine.state is old_state
    assert core.run_route("ksr_request_route", make_ctx()) == 1


def test_lazy_load_on_first_run(core, write_script, make_ctx):
    engine = _engine(core, write_script("function ksr_request_route() return 3 end\n"))
    assert engine.state is None
    assert core.run_route("ksr_request_route", make_ctx()) == 3


def test_each_engine_has_its_own_runtime(core, write_script, make_ctx):
    path = write_script("COUNT = 0\nfunction ksr_request_route() COUNT = COUNT + 1; return COUNT end\n")
    one, two = _engine(core, path), _engine(core, path)
    assert one.run("ksr_request_route", make_ctx()) == 1
    assert one.run("ksr_request_route", make_ctx()) == 2
    assert two.run("ksr_request_route", make_ctx()) == 1


def test_default_lua_version_is_5_4(core, write_script):
    engine = _engine(core, write_script("function ksr_request_route() end\n"))
    engine.load()
    assert engine.state is not None
    assert engine.state.runtime.eval("_VERSION") == "Lua 5.4"


@pytest.mark.parametrize("version", sorted(LUA_MODULES))
def test_other_lua_versions_run_the_same_script(core, write_script, make_ctx, calls, version):
    try:
        lupa_module(version)
    except ModuleError:
        pytest.skip(f"this lupa build has no Lua {version}")
    core.registry.add([export("t", "f", lambda ctx, n, s: calls.rec("f", ctx, n, s) or n + 1, "is")])
    path = write_script("function ksr_request_route()\n"
                        "  local r = KSR.t.f(2, 3)\n  KSR.x.exit()\n  return -1\nend\n"
                        "function ksr_bad()\n  KSR.t.f(1)\nend\n")
    _engine(core, path, lua_version=version)
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("f") == [(2, "3")]
    ctx = make_ctx()
    assert core.run_route("ksr_bad", ctx) == -1
    assert ctx.fault.startswith(f"{path}:7: KSR.t.f(int n, str s): expected 2")


def test_unknown_lua_version_is_a_module_error(core, write_script):
    with pytest.raises(ModuleError, match="lua_version '9.9'"):
        _engine(core, write_script("function ksr_request_route() end\n"), lua_version="9.9")
