"""Running JS callbacks: results, exit/drop, nested runs, errors with file:line and a stack."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import ReturnKind, ScriptError, export
from kemi_core.testing import (
    NESTED_ERROR_JS,
    NESTED_RUNS_JS,
    check_error_in_nested_run,
    check_nested_runs,
)


@pytest.mark.parametrize("body, result", [
    ("", 1), ("return;", 1), ("return true;", 1), ("return false;", -1), ("return 5;", 5),
    ("return -3;", -3), ("return 0;", 0), ("return 2.5;", 2), ("return -0.5;", -1),
    ("return 'text';", 1), ("return null;", 1),
])
def test_route_results(core, make_engine, make_ctx, body, result):
    make_engine(f"function ksr_request_route() {{ {body} }}")
    assert core.run_route("ksr_request_route", make_ctx()) == result


def test_exit_stops_the_route_successfully_from_deep_calls(core, calls, make_engine, make_ctx):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine("""
function inner(i) { if (i == 3) { KSR.x.exit(); } KSR.t.mark("i" + i); }
function ksr_request_route() {
  for (var i = 1; i < 10; i++) { inner(i); }
  KSR.t.mark("after loop");
  return -1;
}
""")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert calls.args("mark") == [("i1",), ("i2",)]
    assert not ctx.dropped and ctx.fault is None


def test_drop_stops_the_route_and_marks_the_context(core, calls, make_engine, make_ctx):
    core.registry.add([calls.export("t", "mark", "s")])
    make_engine("""function ksr_request_route() {
  KSR.t.mark("before"); KSR.x.drop(); KSR.t.mark("after");
}""")
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 0
    assert ctx.dropped
    assert calls.args("mark") == [("before",)]


def test_nested_runs_see_their_own_context_and_restore_the_outer_one(core, calls, make_engine,
                                                                     make_ctx):
    check_nested_runs(core, calls, make_ctx, lambda: make_engine(NESTED_RUNS_JS))


def test_an_error_in_a_nested_run_does_not_end_the_outer_route(core, calls, make_engine, make_ctx):
    check_error_in_nested_run(core, calls, make_ctx, lambda: make_engine(NESTED_ERROR_JS))


def test_a_script_error_is_logged_with_file_line_and_the_js_stack(core, make_engine, make_ctx,
                                                                  caplog):
    engine = make_engine("""// line 1
function helper() {
  var t = null;
  return t.field;          // line 4
}
function ksr_request_route() {
  helper();                // line 7
}
""")
    path = engine.settings.script
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", ctx) == -1
    assert ctx.fault == f"{path}:4: TypeError: cannot read property 'field' of null"
    assert f"at helper ({path}:4:" in caplog.text
    assert f"at ksr_request_route ({path}:7:" in caplog.text
    assert "<input>" not in caplog.text
    # the worker goes on: the same engine runs the next message
    assert core.run_route("ksr_request_route", make_ctx()) == -1


def test_a_python_error_in_a_ksr_function_names_it_at_the_script_line(core, make_engine,
                                                                      make_ctx, caplog):
    def broken(ctx: Any) -> int:
        raise ZeroDivisionError("division by zero")

    core.registry.add([export("t", "broken", broken, "")])
    engine = make_engine("function ksr_request_route() {\n  KSR.t.broken();\n}\n")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", ctx) == -1
    path = engine.settings.script
    assert ctx.fault == (f"{path}:2: ZeroDivisionError in a KSR function: division by zero")
    assert "Python call failed" not in caplog.text


def test_arguments_are_converted_or_refused_with_the_signature(core, calls, make_engine, make_ctx):
    def take(ctx: Any, code: int, reason: str) -> int:
        calls.rec("take", ctx, code, reason)
        return 1

    core.registry.add([export("t", "take", take, "is")])
    engine = make_engine("""
function ksr_request_route() {
  KSR.t.take(200, "OK");
  KSR.t.take(2.0, 1.5);
  KSR.t.take("404", 7);
  KSR.t.take(true, false);
}
function bad_int() { KSR.t.take("abc", "x"); }
function bad_count() { KSR.t.take(1); }
function bad_null() { KSR.t.take(1, null); }
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("take") == [(200, "OK"), (2, "1.5"), (404, "7"), (1, "false")]
    path = engine.settings.script
    sig = "KSR.t.take(int code, str reason)"
    for route, line, why in [
        ("bad_int", 8, "argument 1 must be an integer, got string 'abc'"),
        ("bad_count", 9, "expected 2 arguments, got 1"),
        ("bad_null", 10, "argument 2 must be a string, got null/undefined"),
    ]:
        ctx = make_ctx()
        assert core.run_route(route, ctx) == -1
        assert ctx.fault == f"{path}:{line}: {sig}: {why}"


def test_results_reach_js_as_numbers_strings_booleans_and_null(core, calls, make_engine, make_ctx):
    core.registry.add([
        calls.export("t", "mark", "s"),
        export("t", "num", lambda ctx: 42, ""),
        export("t", "big", lambda ctx: 2**40, "", ReturnKind.XVAL),
        export("t", "neg", lambda ctx: -(2**35), ""),
        export("t", "text", lambda ctx: "héllo", "", ReturnKind.XVAL),
        export("t", "none", lambda ctx: None, "", ReturnKind.XVAL),
        export("t", "yes", lambda ctx: True, "", ReturnKind.BOOL),
        export("t", "nothing", lambda ctx: None, "", ReturnKind.NONE),
        export("t", "false_int", lambda ctx: False, ""),
    ])
    make_engine("""function ksr_request_route() {
  var out = [KSR.t.num(), KSR.t.big(), KSR.t.neg(), KSR.t.text(), KSR.t.none(), KSR.t.yes(),
             KSR.t.nothing(), KSR.t.false_int()];
  KSR.t.mark(JSON.stringify(out) + " " + out.map(function (v) { return typeof v; }).join(","));
}""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("mark") == [(
        '[42,1099511627776,-34359738368,"héllo",null,true,null,-1] '
        "number,number,number,string,object,boolean,object,number",)]


def test_invalid_utf8_from_a_message_comes_back_byte_for_byte(core, make_engine, make_ctx):
    from kemi_core.api import get_pv

    raw = b"\xff\xfeok"
    msg = make_ctx().msg.to_bytes().replace(b"Call-ID: eng-test-1@127.0.0.1",
                                             b"Call-ID: " + raw + b"@h")
    core.registry.add([export("t", "ci", lambda ctx: get_pv(ctx, "$ci"), "", ReturnKind.XVAL),
                       export("t", "keep", lambda ctx, v: ctx.extra.__setitem__("v", v) or 1,
                              "s")])
    make_engine("function ksr_request_route() { KSR.t.keep(KSR.t.ci() + '!'); }")
    ctx = make_ctx(msg)
    assert core.run_route("ksr_request_route", ctx) == 1
    assert ctx.extra["v"].encode("utf-8", "surrogateescape") == raw + b"@h!"


def test_x_modf_takes_extra_arguments_as_strings(core, calls, make_engine, make_ctx):
    from kemi_core.api import CfgFunction
    from kemi_core.testing import add_core_exports

    def cfg_fn(ctx: Any, n: int, text: str = "-") -> int:
        calls.rec("cfg", ctx, n, text)
        return 4

    add_core_exports(core)
    core.add_cfg_function(CfgFunction("t", "t_cfg", cfg_fn, 1, 2, (0,)))
    make_engine('function ksr_request_route() { return KSR.x.modf("t_cfg", 16, "txt"); }')
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 4
    assert calls.log == [("cfg", ctx, (16, "txt"))]


def test_unknown_names_are_undefined_and_logged_once(core, make_engine, make_ctx, caplog):
    make_engine("""function ksr_request_route() {
  if (KSR.nosuch !== undefined || KSR.x.nosuch !== undefined) return -5;
  return KSR.x.nosuch === undefined ? 3 : -6;
}
function call_it() { KSR.x.nosuch(); }
""")
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", make_ctx()) == 3
        ctx = make_ctx()
        assert core.run_route("call_it", ctx) == -1
    assert caplog.text.count("KSR.x.nosuch is not a known KEMI function") == 1
    assert ctx.fault is not None and ":5: TypeError" in ctx.fault


def test_missing_callback_is_a_fault(core, make_engine, make_ctx, caplog):
    engine = make_engine("function ksr_request_route() {}\nvar ksr_reply_route = 5;\n")
    assert engine.has_route("ksr_request_route")
    assert not engine.has_route("ksr_failure_one")
    assert not engine.has_route("ksr_reply_route")  # not a function
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_failure_one", ctx) == -1
    assert "ksr_failure_one() is not defined" in ctx.fault


@pytest.mark.parametrize("text, line, reason", [
    ("function ksr_request_route() {\n  var x = [1, 2;\n}\n", 2, "SyntaxError"),
    ("var a = 1;\nundefined_function();\nfunction ksr_request_route() {}\n", 2,
     "ReferenceError: undefined_function is not defined"),
])
def test_a_broken_script_is_refused_with_file_line(core, write_script, text, line, reason):
    from kemi_engine_jsdt import JsdtEngine, JsdtSettings

    path = write_script(text)
    engine = JsdtEngine(core, JsdtSettings(script=path))
    with pytest.raises(ScriptError) as err:
        engine.load()
    assert str(err.value).startswith(f"{path}:{line}: {reason}")


def test_a_script_without_the_request_route_or_file_is_refused(core, write_script, tmp_path):
    from kemi_engine_jsdt import JsdtEngine, JsdtSettings

    path = write_script("function other() {}\n")
    with pytest.raises(ScriptError, match=r"does not define function ksr_request_route\(\)"):
        JsdtEngine(core, JsdtSettings(script=path)).load()
    missing = str(tmp_path / "nope.js")
    with pytest.raises(ScriptError, match="JavaScript file not found"):
        JsdtEngine(core, JsdtSettings(script=missing)).load()


def test_current_location_is_the_script_line_running_a_ksr_call(core, make_engine, make_ctx):
    seen: list[str | None] = []
    core.registry.add([export("t", "where", lambda ctx: seen.append(
        core.engine.current_location()) or 1, "")])
    engine = make_engine("function ksr_request_route() {\n\n  KSR.t.where();\n}\n")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert seen == [f"{engine.settings.script}:3"]


def test_one_interpreter_per_engine(core, calls, make_engine, make_ctx):
    """Globals of one engine (one worker, one reload generation) are not another's."""
    core.registry.add([calls.export("t", "mark", "s")])
    text = "var n = 0;\nfunction ksr_request_route() { n++; KSR.t.mark('n' + n); }\n"
    first = make_engine(text)
    core.run_route("ksr_request_route", make_ctx())
    core.run_route("ksr_request_route", make_ctx())
    second = make_engine(text)
    core.run_route("ksr_request_route", make_ctx())
    assert first.runtime is not second.runtime
    assert calls.args("mark") == [("n1",), ("n2",), ("n1",)]


def test_has_route_says_what_typeof_says_for_every_kind_of_global(core, make_engine):
    """has_route reads the global from Python first (only an object can be a function): the
    same answer as JS's ``typeof globalThis[name] === 'function'`` for every kind of value."""
    values = {"fn": "function () {}", "arrow": "() => 1", "klass": "class {}",
              "obj": "{}", "arr": "[1]", "num": "1.5", "int": "7", "str": "'ksr'", "yes": "true",
              "nul": "null", "undef": "undefined", "sym": "Symbol('s')", "big": "10n",
              "bound": "Math.max.bind(null)", "date": "new Date(0)"}
    text = "function ksr_request_route() {}\n" + "".join(
        f"var {name} = {value};\n" for name, value in values.items())
    engine = make_engine(text)
    runtime = engine.runtime
    typeof = runtime.context.eval("(function (n) { return typeof globalThis[n] === 'function'; })")
    for name in [*values, "nosuch"]:
        assert engine.has_route(name) is bool(typeof(name)), name
    assert {n for n in values if engine.has_route(n)} == {"fn", "arrow", "klass", "bound"}


def test_has_route_follows_a_route_that_ran_once_and_is_gone(core, make_engine, make_ctx):
    """A function that ran is asked of JS directly: still the live answer after the script
    made its global something else."""
    engine = make_engine("function ksr_request_route() {}\n"
                         "function ksr_reply_route() { ksr_reply_route = {}; return 2; }\n")
    assert engine.has_route("ksr_reply_route")
    assert core.run_route("ksr_reply_route", make_ctx()) == 2
    assert not engine.has_route("ksr_reply_route")
