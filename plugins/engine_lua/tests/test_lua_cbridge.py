"""The C bridge (_cbridge.c: KSR calls as Lua C closures) against lupa's call, the reference.

The same Python callables are called from Lua both ways, with every kind of argument and
result lupa converts (and random mixes of them), and exceptions: Lua must see the same values
(type, Lua number subtype, text) and the same error objects. Then whole scripts (the seed's
example, the error cases) run in an engine with the bridge and in one without it: same
results, same calls, same log lines and errors with the same file:line.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lupa.lua54
import pytest

from kemi_core.api import (
    Core,
    CoreConfig,
    ReturnKind,
    ScriptDrop,
    ScriptError,
    ScriptExit,
    export,
)
from kemi_core.testing import add_core_exports
from kemi_engine_lua import LuaEngine, LuaSettings, cbridge
from kemi_engine_lua.runtime import LuaState

pytestmark = pytest.mark.skipif(cbridge._cbridge is None,
                                reason="kemi_engine_lua._cbridge not built (no C compiler)")


@pytest.fixture
def bridge_off() -> Iterator[None]:
    saved = cbridge.enabled
    cbridge.enabled = False
    try:
        yield
    finally:
        cbridge.enabled = saved


# ---- one call, both ways --------------------------------------------------------------------

#: in Lua: (closure, f) -> what a pcall of it gives, each value described (type, math.type,
#: text), userdata and errors kept as values for Python to compare
PROBE = r"""
local make, ident, take = ...
local function describe(...)
  local r = table.pack(...)
  local out, objects = {}, {}
  for i = 1, r.n do
    local v = r[i]
    local t = type(v)
    if t == "userdata" or t == "table" then
      out[i] = t
      objects[#objects + 1] = v
    elseif t == "number" then
      out[i] = math.type(v) .. ":" .. string.format("%.17g", v)
    elseif t == "string" then  -- as hex: a string need not be UTF-8
      out[i] = t .. ":" .. v:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)
    else
      out[i] = t .. ":" .. tostring(v)
    end
  end
  return table.concat(out, "|"), objects
end
local function closure(f) return make(ident(f), f, take) end
return function(f, code)
  local args = load("return " .. code)
  local c = closure(f)
  assert(c ~= f and type(c) == "function", "no C closure was made")
  local a, ao = describe(pcall(function() return f(args()) end))
  local b, bo = describe(pcall(function() return c(args()) end))
  return a, ao, b, bo
end
"""


def _runtime() -> Any:
    rt = lupa.lua54.LuaRuntime(encoding="utf-8", register_eval=False, register_builtins=False,
                               unpack_returned_tuples=True)
    made = cbridge.bridge(lupa.lua54, rt)
    assert made is not None, "the C bridge is built but not usable in lupa.lua54"
    return rt.execute(PROBE, made.make, id, made.take)


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Failure(Exception):
    pass


RESULTS: list[Any] = [
    None, True, False, 0, -1, 7, 2**63 - 1, -2**63, 2**63, 2**70, 1.5, -0.0, 1e300, "", "abc",
    "é€", "\udc80x", "\U0010ff80", b"", b"\xff\x00", (), (1, "two"), ("one",), [1], {"a": 1},
    Color.RED, Text("sub"), object, 3 + 4j,
]
ARGS: list[str] = [
    "", "1", "-7", "1.5", "2.0", "0x7fffffffffffffff", "math.mininteger", "'text'", "''",
    "'\\xff'", "'caf\\xc3\\xa9'", "'a\\0b'", "nil", "true", "false", "{}", "print",
    "1, 'two', 3.0, nil, true", "1, 2, 3, 4, 5, 6, 7, 8", "1, 2, 3, 4, 5, 6, 7, 8, 9",
    "nil, nil", "'x', {}",
]


def _args_text(args: tuple[Any, ...]) -> str:
    """What the callable received: Python values, and Lua objects by their Lua type."""
    return repr([lupa.lua54.lua_type(a) or a for a in args])


def _both(probe: Any, f: Callable[..., Any], code: str) -> tuple[Any, Any]:
    a, ao, b, bo = probe(f, code)
    return (a, list(ao.values())), (b, list(bo.values()))


def _same(x: tuple[Any, Any], y: tuple[Any, Any]) -> bool:
    """Same descriptions, and the same objects: the very object a Python function gave or
    raised; an error lupa made in each call (a conversion's) of the same class and args."""
    return x[0] == y[0] and len(x[1]) == len(y[1]) and all(
        p is q or (isinstance(p, BaseException) and type(p) is type(q) and p.args == q.args)
        for p, q in zip(x[1], y[1], strict=True))


def test_every_result_kind_reaches_lua_as_lupa_gives_it() -> None:
    probe = _runtime()
    for value in RESULTS:
        lupa_side, c_side = _both(probe, lambda *a, v=value: v, "1, 'x'")
        assert _same(lupa_side, c_side), (value, lupa_side, c_side)


def test_every_argument_kind_reaches_python_as_lupa_gives_it() -> None:
    probe = _runtime()
    for code in ARGS:
        lupa_side, c_side = _both(probe, lambda *a: _args_text(a), code)
        assert _same(lupa_side, c_side), (code, lupa_side, c_side)


def test_random_mixes_of_arguments_and_results() -> None:
    probe = _runtime()
    rng = random.Random(5)
    pool = [a for a in ARGS if a and "," not in a]
    for _ in range(300):
        code = ", ".join(rng.choice(pool) for _ in range(rng.randint(0, 10)))
        value = rng.choice(RESULTS)
        lupa_side, c_side = _both(probe, lambda *a, v=value: (_args_text(a), v), code)
        assert _same(lupa_side, c_side), (code, value, lupa_side, c_side)
        lupa_side, c_side = _both(probe, lambda *a, v=value: v, code)
        assert _same(lupa_side, c_side), (code, value, lupa_side, c_side)


def test_an_exception_reaches_lua_as_the_same_object() -> None:
    probe = _runtime()
    for error in (Failure("boom"), ScriptExit(), ScriptDrop(), TypeError("bad"), KeyError("k")):
        def raise_it(*a: Any, e: BaseException = error) -> Any:
            raise e
        lupa_side, c_side = _both(probe, raise_it, "1")
        assert lupa_side[0] == c_side[0] == "boolean:false|userdata"
        assert lupa_side[1][0] is c_side[1][0] is error


def test_an_exception_after_a_result_kept_for_lupa_leaves_nothing_behind() -> None:
    """A result lupa converts (kept for take()) and then an exception: each call gets its own."""
    probe = _runtime()
    kept = [1]
    lupa_side, c_side = _both(probe, lambda *a: kept, "1")
    assert _same(lupa_side, c_side)
    error = Failure("second")

    def raise_it(*a: Any) -> Any:
        raise error
    lupa_side, c_side = _both(probe, raise_it, "")
    assert c_side[1][0] is error
    assert cbridge._cbridge is not None and cbridge._cbridge.take() is None


# ---- whole scripts, both ways ---------------------------------------------------------------

SCRIPT = """
function ksr_request_route()
  KSR.info("request from " .. KSR.pv.get("$si") .. ":" .. KSR.pv.geti("$sp"))
  KSR.t.rec(1, "one")
  if KSR.t.flag() then KSR.t.rec(2, "flag") end
  KSR.pv.sets("$var(x)", "caf\\xc3\\xa9")
  KSR.t.rec(#KSR.pv.get("$var(x)"), KSR.pv.get("$var(x)"))
  if KSR.is_INVITE() then KSR.t.rec(3, "invite") end
  KSR.t.rec(KSR.t.nothing() == nil and 4 or 5, tostring(KSR.t.nothing()))
  KSR.t.rec(6, KSR.t.where("asked with an argument"))
  return KSR.t.number(41) + 1
end
function fails() KSR.t.rec(1, "before"); KSR.t.boom() end
function exits() KSR.t.rec(1, "before"); KSR.x.exit(); KSR.t.rec(2, "after") end
function drops() KSR.t.rec(1, "before"); KSR.x.drop(); KSR.t.rec(2, "after") end
function python_exit() KSR.t.leave(); KSR.t.rec(2, "after") end
function wrong_type() KSR.t.rec("x", "y") end
function wrong_count() KSR.t.rec(1) end
function wrong_nil() KSR.t.number(nil) end
function unknown() KSR.t.nothing_here(1) end
function unknown_module() KSR.nomod.f() end
function reload_inside() KSR.t.reload(); KSR.t.rec(9, "after reload") end
function nested() KSR.t.rec(1, "outer"); KSR.t.run("inner"); return KSR.t.number(1) end
function inner() KSR.t.rec(2, "inner"); return 5 end
function legacy() sr.log("info", "legacy " .. sr.pv.get("$rm")); sr.log("bad level", "x") end
"""
ROUTES = ["ksr_request_route", "fails", "exits", "drops", "python_exit", "wrong_type",
          "wrong_count", "wrong_nil", "unknown", "unknown_module", "reload_inside", "nested",
          "legacy", "ksr_request_route"]


def _exports(record: list[Any], engines: list[LuaEngine], ctx_of: Callable[[], Any]) -> list[Any]:
    def rec(ctx: Any, n: int, text: str) -> int:
        record.append((n, text))
        return 1

    def boom(ctx: Any) -> int:
        raise ValueError("export failed")

    def leave(ctx: Any) -> int:
        raise ScriptExit()

    def reload(ctx: Any) -> int:
        engines[0].reload()
        return 1

    def where(ctx: Any, text: str) -> str:
        # a lupa call from inside an export (the debugger's cfgtrace does this)
        return str(engines[0].current_location())

    def run(ctx: Any, name: str) -> int:
        return int(engines[0].run(name, ctx_of()) or 0)

    return [
        export("t", "rec", rec, "is"), export("t", "boom", boom, ""),
        export("t", "flag", lambda ctx: True, "", returns="bool"),
        export("t", "nothing", lambda ctx: None, ""),
        export("t", "number", lambda ctx, n: n, "i"),
        export("t", "leave", leave, ""), export("t", "reload", reload, ""),
        export("t", "run", run, "s"), export("t", "where", where, "s", returns=ReturnKind.XVAL),
    ]


def _outcome(tmp_path: Path, make_ctx: Callable[..., Any], caplog: Any, bridged: bool,
             script: Path) -> list[Any]:
    saved = cbridge.enabled
    cbridge.enabled = bridged
    try:
        core = Core(CoreConfig())
        add_core_exports(core)
        record: list[Any] = []
        engines: list[LuaEngine] = []
        core.registry.add(_exports(record, engines, lambda: make_ctx()))
        engine = LuaEngine(core, LuaSettings(scripts=(str(script),)))
        engines.append(engine)
        engine.load()
        core.engine = engine
        assert engine.state is not None and (engine.state.bridge is not None) is bridged
        out: list[Any] = []
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            for route in ROUTES:
                ctx = make_ctx()
                try:
                    result: Any = engine.run(route, ctx)
                except (ScriptError, ScriptExit, ScriptDrop) as e:
                    cause = e.__cause__
                    result = (type(e).__name__, str(e),
                              type(cause).__name__ if cause is not None else None)
                out.append((route, result, list(record)))
                record.clear()
        assert engine.state is not None and (engine.state.bridge is not None) is bridged  # after reload
        out.append([(r.name, r.levelname, r.getMessage()) for r in caplog.records])
        return out
    finally:
        cbridge.enabled = saved


def test_scripts_give_the_same_results_calls_logs_and_errors(
        tmp_path: Path, make_ctx: Callable[..., Any], caplog: Any) -> None:
    script = tmp_path / "both.lua"
    script.write_text(SCRIPT)
    reference = _outcome(tmp_path, make_ctx, caplog, False, script)
    bridged = _outcome(tmp_path, make_ctx, caplog, True, script)
    assert bridged == reference
    by_route = {r[0]: r for r in reference[:-1]}
    # the reference itself says what the cases are (so the comparison is not of two blanks)
    assert by_route["ksr_request_route"][1] == 42
    assert by_route["ksr_request_route"][2][:4] == [(1, "one"), (2, "flag"), (5, "café"),
                                                     (3, "invite")]
    assert by_route["ksr_request_route"][2][5] == (6, f"{script}:10")
    assert by_route["fails"][1][0] == "ScriptError" and f"{script}:13:" in by_route["fails"][1][1]
    assert by_route["fails"][1][2] == "ValueError"
    assert by_route["exits"][1:3] == (1, [(1, "before")])
    assert by_route["drops"][1][0] == "ScriptDrop"
    assert by_route["python_exit"][1][0] == "ScriptExit"
    assert f"{script}:17:" in by_route["wrong_type"][1][1]
    assert "expected 2 arguments, got 1" in by_route["wrong_count"][1][1]
    assert "attempt to call a nil value" in by_route["unknown"][1][1]
    assert by_route["reload_inside"][2] == [(9, "after reload")]
    assert by_route["nested"][1:3] == (1, [(1, "outer"), (2, "inner")])
    assert any("KSR.t.nothing_here" in m for _, _, m in reference[-1])


def test_the_seed_example_runs_the_same_both_ways(
        tmp_path: Path, make_ctx: Callable[..., Any], caplog: Any) -> None:
    import importlib.util

    from kemi_core.testing import Calls

    spec = importlib.util.spec_from_file_location("seed_doubles", Path(__file__).with_name(
        "test_lua_seed.py"))
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    SEED_SCRIPT, SeedDoubles = seed.SEED_SCRIPT, seed.SeedDoubles

    outcomes = []
    for bridged in (False, True):
        saved = cbridge.enabled
        cbridge.enabled = bridged
        try:
            core = Core(CoreConfig())
            calls = Calls()
            core.registry.add(SeedDoubles(calls).exports())
            engine = LuaEngine(core, LuaSettings(scripts=(str(SEED_SCRIPT),)))
            engine.load()
            core.engine = engine
            assert isinstance(engine.state, LuaState) and (engine.state.bridge is not None) is bridged
            results = [core.run_route(r, make_ctx()) for r in
                       ("ksr_request_route", "ksr_reply_route", "ksr_branch_route_one",
                        "ksr_onreply_route_one", "ksr_failure_route_one")]
            outcomes.append((results, [(n, a) for n, _, a in calls.log]))
        finally:
            cbridge.enabled = saved
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1][0] == ("info", ("===== request - from kamailio lua script\n",))


def test_off_switch_keeps_lupas_path(bridge_off: None, make_engine: Callable[..., LuaEngine]) -> None:
    engine = make_engine("function ksr_request_route() return 1 end")
    assert engine.state is not None and engine.state.bridge is None


RESULTS_SCRIPT = """
function ksr_request_route() return 1 end
function r_nil() return nil end
function r_none() return end
function r_true() return true end
function r_float() return 1.5 end
function r_big() return math.maxinteger end
function r_str() return "caf\\xc3\\xa9" end
function r_bad() return "\\xff" end
function r_table() return {} end
function r_two() return 1, "two" end
function r_args(...) local t = table.pack(...); return t.n .. ":" .. table.concat(t, ",") end
function r_fails() error("plain Lua error") end
function r_drop() KSR.x.drop() end
function r_exit() KSR.x.exit() end
function r_error_table() error(setmetatable({}, {__tostring = function() return "E7" end})) end
r_callable = setmetatable({}, {__call = function() return 1 end})
setmetatable(_G, {__index = function(t, k) if k == "r_meta" then return function() return "meta" end end end})
"""
RESULT_RUNS: list[tuple[str, tuple[Any, ...]]] = [
    ("r_nil", ()), ("r_none", ()), ("r_true", ()), ("r_float", ()), ("r_big", ()),
    ("r_str", ()), ("r_bad", ()), ("r_table", ()), ("r_two", ()), ("r_args", ()),
    ("r_args", ("event", 7)), ("r_args", ("a", "b", "c", "d", "e")), ("r_args", (True,)),
    ("r_args", ("\udc80",)), ("r_args", (2**70,)), ("r_fails", ()), ("r_drop", ()),
    ("r_missing", ()), ("r_exit", ()), ("r_error_table", ()), ("r_callable", ()),
    ("r_meta", ()), ("r_meta", ("arg",)), ("r_fails", ("event",)),
]


def _run_results(make_engine: Callable[..., LuaEngine], make_ctx: Callable[..., Any],
                 bridged: bool) -> list[Any]:
    saved = cbridge.enabled, cbridge.runs
    cbridge.enabled = cbridge.runs = bridged
    try:
        engine = make_engine(RESULTS_SCRIPT)
        out: list[Any] = []
        for name, args in RESULT_RUNS:
            try:
                r: Any = engine.run(name, make_ctx(), *args)
                r = (type(r).__name__, lupa.lua54.lua_type(r) or r)
            except Exception as e:  # noqa: BLE001 - compared between the two paths
                r = (type(e).__name__, str(e))
            out.append((name, r))
        assert engine.state is not None
        run_type = type(engine.state.runners["r_nil"]).__name__
        assert (run_type == "LuaRun") is bridged, run_type
        return out
    finally:
        cbridge.enabled, cbridge.runs = saved


def test_route_runs_give_what_lupas_call_gives(make_engine: Callable[..., LuaEngine],
                                               make_ctx: Callable[..., Any]) -> None:
    reference = _run_results(make_engine, make_ctx, False)
    assert _run_results(make_engine, make_ctx, True) == reference
    got = dict(reference[:9])
    assert got["r_two"] == ("int", 1) and got["r_str"] == ("str", "café")
    assert got["r_bad"][0] == "UnicodeDecodeError" and got["r_table"] == ("_LuaTable", "table")
    assert reference[10] == ("r_args", ("str", "2:event,7"))
    got = dict(reference[15:])
    assert got["r_exit"] == ("int", 1) and got["r_meta"] == ("str", "meta")
    assert got["r_error_table"][0] == "ScriptError" and ":16: E7" in got["r_error_table"][1]
    assert got["r_callable"][0] == "ScriptError"
    assert "not defined" in got["r_callable"][1] and ":13:" in got["r_fails"][1]


FACTS_ACK = (b"ACK sip:bob@example.com SIP/2.0\r\n"
             b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-eng-2\r\n"
             b"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
             b"Call-ID: eng-test-1@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
FACTS_SCRIPT = """
function inner(event)
  KSR.t.mark("inner " .. tostring(event) .. " " .. tostring(KSR.is_ACK()) .. tostring(KSR.is_INVITE()))
end
function outer()
  KSR.t.mark("outer " .. tostring(KSR.is_INVITE()))
  KSR.t.nested("ev")
  KSR.t.mark("outer " .. tostring(KSR.is_INVITE()) .. tostring(KSR.is_ACK()))
  KSR.t.nested_by_lupa()
  KSR.t.mark("outer " .. tostring(KSR.is_INVITE()) .. tostring(KSR.is_ACK()))
  KSR.t.nested_early("ev")
  KSR.t.mark("outer " .. tostring(KSR.is_ACK()))
end
function ksr_request_route() outer() end
function outer_by_lupa(flag) outer() end
function early(event)
  KSR.t.nested("deep")
  KSR.t.mark("early " .. tostring(KSR.is_ACK()))
end
"""


def _facts_marks(tmp_path: Path, make_ctx: Callable[..., Any], bridged: bool) -> list[Any]:
    """Nested runs reading their own message's facts (KSR.is_ACK ... answered in Lua) and
    giving the caller's back; a True argument makes a run lupa's (the prelude's runner)."""
    saved = cbridge.enabled, cbridge.runs
    cbridge.enabled = cbridge.runs = bridged
    marks: list[str] = []

    def nested(ctx: Any, event: str) -> int:
        return int(engine.run("inner", make_ctx(FACTS_ACK), event) or 1)

    def nested_by_lupa(ctx: Any) -> int:
        return int(engine.run("inner", make_ctx(FACTS_ACK), True) or 1)

    def nested_early(ctx: Any, event: str) -> int:  # a run that asks nothing before nesting
        return int(engine.run("early", make_ctx(FACTS_ACK), event) or 1)

    try:
        core = Core(CoreConfig())
        add_core_exports(core)
        core.registry.add([
            export("t", "mark", lambda ctx, text: marks.append(text), "s"),
            export("t", "nested", nested, "s", ReturnKind.INT),
            export("t", "nested_by_lupa", nested_by_lupa, "", ReturnKind.INT),
            export("t", "nested_early", nested_early, "s", ReturnKind.INT)])
        script = tmp_path / f"facts_{bridged}.lua"
        script.write_text(FACTS_SCRIPT)
        engine = LuaEngine(core, LuaSettings(scripts=(str(script),)))
        engine.load()
        assert engine.run("ksr_request_route", make_ctx()) is None
        marks.append("--")
        assert engine.run("outer_by_lupa", make_ctx(), True) is None
        assert engine.state is not None
        assert (type(engine.state.runners["inner"]).__name__ == "LuaRun") is bridged
        return marks
    finally:
        cbridge.enabled, cbridge.runs = saved


def test_nested_runs_keep_each_runs_message_facts(tmp_path: Path,
                                                  make_ctx: Callable[..., Any]) -> None:
    reference = _facts_marks(tmp_path, make_ctx, False)
    assert _facts_marks(tmp_path, make_ctx, True) == reference
    one = ["outer true", "inner ev truefalse", "outer truefalse", "inner true truefalse",
           "outer truefalse", "inner deep truefalse", "early true", "outer false"]
    assert reference == [*one, "--", *one]


def test_a_run_made_before_and_after_its_runner_and_after_a_failure(
        make_engine: Callable[..., LuaEngine], make_ctx: Callable[..., Any]) -> None:
    engine = make_engine(RESULTS_SCRIPT)
    ctx = make_ctx()
    assert engine.run("r_str", ctx) == "café" and engine.ctx is None  # the runner made here
    assert engine.run("r_str", ctx) == "café" and engine.ctx is None  # then the C run
    assert engine.state is not None
    assert type(engine.state.runners["r_str"]).__name__ == "LuaRun"
    with pytest.raises(ScriptError, match=":13: plain Lua error"):
        engine.run("r_fails", ctx)
    assert engine.ctx is None
    engine.state = None  # not loaded: the method loads the script
    assert engine.run("r_float", ctx) == 1.5


def test_run_is_compiled_with_the_bridge_and_the_method_without(
        make_engine: Callable[..., LuaEngine], make_ctx: Callable[..., Any]) -> None:
    saved = cbridge.enabled
    try:
        for bridged in (False, True):
            cbridge.enabled = bridged
            engine = make_engine(RESULTS_SCRIPT)
            assert ("run" in vars(engine)) is bridged
            assert type(engine.run).__name__ == ("builtin_function_or_method" if bridged
                                                 else "method")
            ctx = make_ctx()
            # a run inside another's: the outer ctx and route name come back
            outer = make_ctx()
            engine.ctx, engine.route = outer, "outer_route"
            assert engine.run("r_args", ctx, "a", 2) == "2:a,2" and engine.ctx is outer
            with pytest.raises(ScriptDrop):
                engine.run("r_drop", ctx)
            assert engine.ctx is outer and engine.route == "outer_route"
            assert engine.run("r_exit", ctx) == 1 and engine.ctx is outer
            assert engine.route == "outer_route"
            assert engine.run(name="r_nil", ctx=ctx) is None  # keywords: the method
    finally:
        cbridge.enabled = saved


class _Holder:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx


class _Raising:
    """A message whose ``what`` attribute raises ``exc``."""

    def __init__(self, what: str, exc: BaseException, is_request: Any = True) -> None:
        self.what, self.exc, self._is_request = what, exc, is_request

    def __getattr__(self, name: str) -> Any:
        if name == self.what:
            raise self.exc
        if name == "is_request":
            return self._is_request
        if name == "method":
            return "Invite"
        raise AttributeError(name)


def test_facts_read_in_c_answer_as_resolvers_facts(make_ctx: Callable[..., Any]) -> None:
    from kemi_engine_lua.resolver import Resolver

    assert cbridge._cbridge is not None
    reply = (b"SIP/2.0 180 Ringing\r\n" + FACTS_ACK.split(b"\r\n", 1)[1])
    messages: list[Any] = [make_ctx(), make_ctx(FACTS_ACK), make_ctx(reply),
                           make_ctx(FACTS_ACK.replace(b"ACK sip", b"ack sip")),
                           make_ctx(reply.replace(b"CSeq: 1 ACK", b"CSeq: x")),
                           make_ctx(reply.replace(b"CSeq: 1 ACK", b"CSeq: 1 x\xc3\xa9"))]
    assert messages[4].msg.is_request is False
    with pytest.raises(Exception):  # noqa: B017,PT011 - the reply's CSeq is unreadable
        messages[4].msg.method  # noqa: B018
    shapes: list[Any] = [*messages, None, object(),
                         type("Ctx", (), {"msg": _Raising("is_request", ValueError("x"))})(),
                         type("Ctx", (), {"msg": _Raising("method", KeyError("m"))})(),
                         type("Ctx", (), {"msg": _Raising("upper", TypeError("u"))})()]
    for ctx in shapes:
        holder = _Holder(ctx)
        resolver = Resolver.__new__(Resolver)
        resolver.holder = holder
        want = Resolver.facts(resolver)
        got = cbridge._cbridge.facts_reader(holder)()
        assert got == want and [type(v) for v in got] == [type(v) for v in want], ctx
    # what is not an Exception goes through, as from the Python form
    holder = _Holder(type("Ctx", (), {"msg": _Raising("method", KeyboardInterrupt())})())
    with pytest.raises(KeyboardInterrupt):
        cbridge._cbridge.facts_reader(holder)()
    assert cbridge.facts(holder, lambda: "pure") is not None
    upper = cbridge._cbridge.facts_reader(_Holder(make_ctx()))()
    assert upper[0] is True and upper[1] == upper[2] == "INVITE"


def test_lua_functions_not_found_is_an_error_the_engine_takes_as_lupas_path(
        tmp_path: Path) -> None:
    """init() of a library that is not loaded (or lacks Lua's functions): OSError, on which
    cbridge.bridge answers None (the engine keeps lupa's calls)."""
    assert cbridge._cbridge is not None
    with pytest.raises(OSError, match="is not loaded"):
        cbridge._cbridge.init(str(tmp_path / "no_such_lua.so"))
