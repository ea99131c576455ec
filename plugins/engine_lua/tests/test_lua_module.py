"""app_lua as a module: modparams, mod_init checks, engine spec, RPCs, cross-process reload."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os

import pytest

import kemi_engine_lua
from kemi_core.api import ConfigError, Core, CoreConfig, ModuleError, ScriptError, export
from kemi_core.testing import ModuleLoader, load_plugin
from kemi_engine_lua import LuaEngine

GOOD = "function ksr_request_route() return VERSION_MARK end\nVERSION_MARK = {n}\n"


def _load(core: Core, *params: tuple[str, object]) -> ModuleLoader:
    return load_plugin(core, "app_lua", kemi_engine_lua, *params)


def test_registers_params_rpcs_and_the_lua_engine(core):
    _load(core)
    assert {n for (m, n) in core.params if m == "app_lua"} == {
        "load", "reload", "log_mode", "register", "lua_version"}
    assert core.modparam("app_lua", "reload") == 1
    assert core.modparam("app_lua", "lua_version") == "5.4"
    assert {"app_lua.reload", "app_lua.list", "app_lua.api_list"} <= set(core.rpc_commands)
    spec = core.engine_specs["lua"]
    assert spec.name == "lua"


def test_unknown_param_is_refused(core):
    with pytest.raises(ConfigError, match="no parameter 'script_name'"):
        _load(core, ("script_name", "/x.lua"))


def test_mod_init_checks_the_script_and_the_factory_builds_a_working_engine(core, write_script,
                                                                           make_ctx):
    path = write_script(GOOD.format(n=7))
    loader = _load(core, ("load", path))
    loader.init_all()
    engine = core.engine_specs["lua"].factory(core)
    assert isinstance(engine, LuaEngine)
    engine.load()
    core.engine = engine
    assert core.run_route("ksr_request_route", make_ctx()) == 7


@pytest.mark.parametrize("text, match", [
    ("function ksr_request_route(\n", "script.lua:2:"),
    ("function other() end\n", "does not define function ksr_request_route"),
])
def test_mod_init_refuses_a_broken_script(core, write_script, text, match):
    loader = _load(core, ("load", write_script(text)))
    with pytest.raises(ScriptError, match=match):
        loader.init_all()


def test_a_missing_script_file_is_refused_at_its_modparam(core, tmp_path):
    loader = _load(core)
    with pytest.raises(ConfigError, match=r"^k.cfg:7: app_lua.load: file .*gone.lua not found"):
        core.set_param("app_lua", "load", str(tmp_path / "gone.lua"), "k.cfg", 7)
    assert core.modparam("app_lua", "load") == []  # nothing was kept
    assert "app_lua" in loader.plugins


def test_the_engine_still_refuses_a_script_file_gone_since(core, tmp_path):
    script = tmp_path / "gone.lua"
    script.write_text("function ksr_request_route() end\n")
    loader = _load(core, ("load", str(script)))
    script.unlink()
    with pytest.raises(ScriptError, match="gone.lua: Lua script not found"):
        loader.init_all()


def test_cfgengine_lua_without_a_script_is_refused():
    core = Core(CoreConfig(cfgengine="lua"))
    with pytest.raises(ScriptError, match="no script is set"):
        _load(core).init_all()


def test_bad_lua_version_is_refused_at_mod_init(core, write_script):
    loader = _load(core, ("load", write_script(GOOD.format(n=1))), ("lua_version", "4.0"))
    with pytest.raises(ModuleError, match="lua_version '4.0'"):
        loader.init_all()


def test_register_is_accepted_with_one_deprecation_notice(core, write_script, caplog):
    loader = _load(core, ("load", write_script(GOOD.format(n=1))),
                   ("register", "maxfwd"), ("register", "sl"))
    with caplog.at_level(logging.WARNING):
        loader.init_all()
    notices = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(notices) == 1
    assert "maxfwd, sl" in notices[0].getMessage()


def test_log_mode_logs_each_resolution(core, write_script, make_ctx, caplog):
    core.registry.add([export("t", "f", lambda ctx: 1, "")])
    loader = _load(core, ("load", write_script(
        "function ksr_request_route() KSR.t.f(); KSR.t.f() end\n")), ("log_mode", 1))
    loader.init_all()
    core.use_engine(core.engine_specs["lua"])
    with caplog.at_level(logging.INFO):
        core.run_route("ksr_request_route", make_ctx())
    assert caplog.text.count("resolved KSR.t.f") == 1


def _rpc(core: Core, name: str, *params: object) -> object:
    return core.rpc_commands[name].func(core, list(params))


def _started(core: Core, path: str) -> LuaEngine:
    """app_lua loaded with ``path``, "lua" the core's engine (what the server does at start)."""
    _load(core, ("load", path)).init_all()
    engine = core.use_engine(core.engine_specs["lua"])
    assert isinstance(engine, LuaEngine)
    return engine


def test_a_worker_builds_its_own_runtime_from_what_the_main_loaded(core, write_script, make_ctx):
    path = write_script(GOOD.format(n=1))
    main_engine = _started(core, path)
    write_script("broken(")  # the file changes after the main process checked it
    worker_engine = core.new_engine()  # a worker at start
    assert isinstance(worker_engine, LuaEngine)
    assert worker_engine.state is not None and worker_engine.state is not main_engine.state
    core.engine = worker_engine
    assert core.run_route("ksr_request_route", make_ctx()) == 1


def test_rpc_reload_checks_then_switches(core, write_script, make_ctx):
    path = write_script(GOOD.format(n=1))
    _started(core, path)
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    write_script(GOOD.format(n=2))
    assert _rpc(core, "app_lua.reload") == {"engine": "lua", "old": 0, "new": 1}
    assert core.run_route("ksr_request_route", make_ctx()) == 2
    write_script("function ksr_request_route( broken\n")
    with pytest.raises(ScriptError, match=r"script.lua:2: .\). expected near <eof>"):
        _rpc(core, "app_lua.reload")
    assert _rpc(core, "app_lua.list")["version"] == 1  # nothing changed
    assert core.run_route("ksr_request_route", make_ctx()) == 2


def test_worker_loads_what_the_main_checked_not_the_file(core, write_script, make_ctx):
    path = write_script(GOOD.format(n=1))
    _started(core, path)
    write_script(GOOD.format(n=2))
    _rpc(core, "app_lua.reload")
    write_script("broken(")  # the file breaks after the main's check, before the worker's turn
    core.engine = core.new_engine()  # a worker (re)started now
    assert core.run_route("ksr_request_route", make_ctx()) == 2


def test_worker_keeps_its_script_when_its_own_reload_fails(core, write_script, make_ctx, caplog):
    _started(core, write_script(GOOD.format(n=1)))
    before = core.engine
    # A published text this worker cannot load (the main process checked it with the same
    # modules, so only a per-process difference could cause this): the old script stays.
    core._reload.channel.publish(json.dumps(["broken("]).encode())  # type: ignore[union-attr]
    with caplog.at_level(logging.ERROR):
        core.follow_reload()
        core.follow_reload()
    assert core.engine is before
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert caplog.text.count("generation 1 failed to load here") == 1


def test_rpc_reload_refused_when_disabled(core, write_script):
    loader = _load(core, ("load", write_script(GOOD.format(n=1))), ("reload", 0))
    loader.init_all()
    with pytest.raises(ScriptError, match="reload is disabled"):
        _rpc(core, "app_lua.reload")


def test_rpc_reload_checks_the_script_index(core, write_script):
    _started(core, write_script(GOOD.format(n=1)))
    assert _rpc(core, "app_lua.reload", 0) == {"engine": "lua", "old": 0, "new": 1}
    with pytest.raises(ScriptError, match="no script with index 3"):
        _rpc(core, "app_lua.reload", 3)


def test_rpc_list_and_api_list(core, write_script):
    lib = write_script("X = 1\n", "lib.lua")
    main = write_script(GOOD.format(n=1), "main.lua")
    core.registry.add([export("sl", "send_reply", lambda ctx, code, reason: 1, "is"),
                       export("", "info", lambda ctx, msg: 1, "s")])
    loader = _load(core, ("load", lib), ("load", main))
    loader.init_all()
    listed = _rpc(core, "app_lua.list")
    assert listed == {"version": 0, "lua_version": "5.4", "scripts": [
        {"index": 0, "version": 0, "script": lib}, {"index": 1, "version": 0, "script": main}]}
    api = _rpc(core, "app_lua.api_list")
    by_name = {m["func"]: m for m in api["methods"]}
    assert api["msize"] == len(api["methods"])
    assert by_name["sl.send_reply"]["params"] == ["int", "str"]
    assert by_name["sl.send_reply"]["ret"] == "int"
    assert by_name["sl.send_reply"]["signature"] == "KSR.sl.send_reply(int code, str reason)"
    assert by_name["info"]["module"] == ""
    assert "x.exit" in by_name and "x.drop" in by_name


def _worker(core: Core, make_ctx, go, results) -> None:
    """A forked worker: run one request before and one after the main process reloads."""
    core.worker_rank = 1
    core.follow_reload()  # what the dispatcher does before each message
    results.put(core.run_route("ksr_request_route", make_ctx()))
    go.wait(10)
    core.follow_reload()
    results.put(core.run_route("ksr_request_route", make_ctx()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_reload_reaches_a_forked_worker_through_shared_memory(core, write_script, make_ctx):
    path = write_script(GOOD.format(n=1))
    _started(core, path)  # the reload channel is made before the fork, as the server does
    fork = multiprocessing.get_context("fork")
    go, results = fork.Event(), fork.Queue()
    proc = fork.Process(target=_worker, args=(core, make_ctx, go, results))
    proc.start()
    try:
        assert results.get(timeout=10) == 1
        write_script(GOOD.format(n=5))
        _rpc(core, "app_lua.reload")  # in the "main process"
        go.set()
        assert results.get(timeout=10) == 5
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
