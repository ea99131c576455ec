"""app_jsdt as a module: modparams, start-up checks, the engine spec, the core's reload through
app_jsdt.reload, KSR.app_jsdt.* and the jsdt_* cfg functions."""

from __future__ import annotations

from typing import Any

import pytest

import kemi_engine_jsdt
from kemi_core.api import ConfigError, Core, ScriptError, export
from kemi_core.testing import ModuleLoader, add_core_exports, load_plugin
from kemi_engine_jsdt import JsdtEngine

GOOD = "var MARK = {n};\nfunction ksr_request_route() {{ return MARK; }}\n"


def _load(core: Core, *params: tuple[str, object]) -> ModuleLoader:
    return load_plugin(core, "app_jsdt", kemi_engine_jsdt, *params)


def test_registers_params_rpcs_exports_cfg_functions_and_the_engine(core):
    _load(core)
    assert {n for (m, n) in core.params if m == "app_jsdt"} == {"load", "mode", "log_mode"}
    assert core.modparam("app_jsdt", "mode") == 1
    assert {"app_jsdt.reload", "app_jsdt.api_list"} <= set(core.rpc_commands)
    assert core.engine_specs["jsdt"].name == "jsdt"
    assert sorted(core.registry.module("app_jsdt")) == [
        "dofile", "dostring", "run", "run_p1", "run_p2", "run_p3", "runstring"]
    assert {"jsdt_run", "jsdt_runstring", "jsdt_dostring", "jsdt_dofile"} <= set(core.cfg_functions)


def test_unknown_param_is_refused(core):
    with pytest.raises(ConfigError, match="no parameter 'script'"):
        _load(core, ("script", "/x.js"))


def test_the_factory_builds_a_working_engine(core, write_script, make_ctx):
    loader = _load(core, ("load", write_script(GOOD.format(n=7))))
    loader.init_all()
    core.use_engine(core.engine_specs["jsdt"])
    assert isinstance(core.engine, JsdtEngine)
    assert core.run_route("ksr_request_route", make_ctx()) == 7


def test_mod_init_refuses_a_broken_file_at_file_line(core, write_script):
    loader = _load(core, ("load", write_script("function f() {\n  return 1 +;\n}\n")))
    with pytest.raises(ScriptError, match=r"script\.js:2: SyntaxError"):
        loader.init_all()


def test_reload_through_the_core_switches_and_keeps_the_old_file_on_error(core, write_script,
                                                                         make_ctx):
    path = write_script(GOOD.format(n=1))
    loader = _load(core, ("load", path))
    loader.init_all()
    core.use_engine(core.engine_specs["jsdt"])
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    write_script(GOOD.format(n=2))
    answer = core.call_rpc("app_jsdt.reload")
    assert (answer["engine"], answer["new"]) == ("jsdt", answer["old"] + 1)
    assert core.run_route("ksr_request_route", make_ctx()) == 2
    write_script(GOOD.format(n=3) + "function broken( {\n")
    with pytest.raises(ScriptError, match=rf"{path}:4: SyntaxError"):
        core.call_rpc("cfgengine.reload")
    assert core.run_route("ksr_request_route", make_ctx()) == 2


def test_api_list_names_every_ksr_function(core):
    _load(core)
    listing = core.call_rpc("app_jsdt.api_list")
    names = {m["func"] for m in listing["methods"]}
    assert {"app_jsdt.run", "x.exit", "x.drop"} <= names
    assert listing["msize"] == len(listing["methods"])


SCRIPT = """var seen = [];
function ksr_request_route() {
  KSR.app_jsdt.run_p2("helper", "a", "b");
  KSR.app_jsdt.runstring("seen.push('runstring')");
  KSR.app_jsdt.dostring("var seen = 'elsewhere';");
  KSR.t.mark(seen.join(","));
  return KSR.app_jsdt.run("broken");
}
function helper(x, y) { seen.push("helper " + x + y); }
function broken() { throw new Error("no"); }
"""


def test_ksr_app_jsdt_runs_functions_and_text_in_the_right_context(core, write_script, make_ctx):
    marks: list[str] = []
    core.registry.add([export("t", "mark", lambda ctx, s: marks.append(s) or 1, "s")])
    loader = _load(core, ("load", write_script(SCRIPT)))
    loader.init_all()
    core.use_engine(core.engine_specs["jsdt"])
    assert core.run_route("ksr_request_route", make_ctx()) == -1  # run("broken") gave -1
    assert marks == ["helper ab,runstring"]  # dostring ran in a context of its own


def test_jsdt_run_from_another_engine_loads_the_file_once_per_process(core, write_script,
                                                                      make_ctx, tmp_path):
    """jsdt is not the cfgengine: the file needs no ksr_request_route, the module loads it
    for jsdt_run & co on first use; dofile reads another file into a context of its own."""
    add_core_exports(core)
    marks: list[Any] = []
    core.registry.add([export("t", "mark", lambda ctx, s: marks.append(s) or 1, "s")])
    path = write_script("var n = 0;\nfunction count(tag) { n++; KSR.t.mark(tag + n); }\n")
    other = tmp_path / "other.js"
    other.write_text("KSR.t.mark('other ' + typeof count);\n")
    loader = _load(core, ("load", path))
    loader.init_all()
    assert core.engine is None
    run = core.cfg_functions["jsdt_run"].func
    ctx = make_ctx()
    assert run(ctx, "count", "a") == 1 and run(ctx, "count", "b") == 1
    assert core.cfg_functions["jsdt_dofile"].func(ctx, str(other)) == 1
    assert core.cfg_functions["jsdt_run"].func(ctx, "nosuch") == -1
    assert marks == ["a1", "b2", "other undefined"]
