"""The seed's Lua example (examples/lua/kamailio.lua, verbatim) against test doubles.

The exports registered here are TEST DOUBLES of maxfwd, pv, tm, sl and the core's info: they
record each call and return what the test says, so the script's control flow can be checked
without the real modules.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from kemi_core.api import export
from kemi_engine_lua import LuaEngine, LuaSettings

# The repository's copy of the seed example (examples/lua), checked verbatim below.
SEED_SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "lua" / "kamailio.lua"
# SHA-256 of the Lua block of the seed document (Kamailio's "Configuration File Engines" page),
# taken when the example was copied from it.
SEED_SHA256 = "1a8c58c241a64de578514556e4bd7bc816d203e2eb9523688583aac0802a4070"


class SeedDoubles:
    """Test doubles for every export the seed's script calls."""

    def __init__(self, calls: Any, maxfwd: int = 1, relay: int = 1) -> None:
        self.calls, self.maxfwd, self.relay = calls, maxfwd, relay

    def exports(self) -> list[Any]:
        c = self.calls

        def process_maxfwd(ctx: Any, limit: int) -> int:
            c.rec("maxfwd.process_maxfwd", ctx, limit)
            return self.maxfwd

        def pv_sets(ctx: Any, name: str, value: str) -> int:
            c.rec("pv.sets", ctx, name, value)
            if name == "$du":
                ctx.dst_uri = value
            return 1

        def t_on(kind: str) -> Any:
            def fn(ctx: Any, route: str) -> int:
                c.rec(f"tm.t_on_{kind}", ctx, route)
                ctx.mod_state.setdefault("tm_doubles", {})[kind] = route
                return 1
            return fn

        def t_relay(ctx: Any) -> int:
            c.rec("tm.t_relay", ctx)
            return self.relay

        def send_reply(ctx: Any, code: int, reason: str) -> int:
            c.rec("sl.send_reply", ctx, code, reason)
            ctx.replied = True
            return 1

        def info(ctx: Any, text: str) -> int:
            c.rec("info", ctx, text)
            return 1

        return [
            export("maxfwd", "process_maxfwd", process_maxfwd, "i"),
            export("pv", "sets", pv_sets, "ss"),
            export("tm", "t_on_branch", t_on("branch"), "s"),
            export("tm", "t_on_reply", t_on("reply"), "s"),
            export("tm", "t_on_failure", t_on("failure"), "s"),
            export("tm", "t_relay", t_relay, ""),
            export("sl", "send_reply", send_reply, "is"),
            export("", "info", info, "s"),
        ]


def _seed_engine(core: Any, doubles: SeedDoubles) -> LuaEngine:
    core.registry.add(doubles.exports())
    engine = LuaEngine(core, LuaSettings(scripts=(str(SEED_SCRIPT),)))
    engine.load()
    core.engine = engine
    return engine


def test_the_copy_is_the_seeds_text_verbatim():
    assert hashlib.sha256(SEED_SCRIPT.read_bytes()).hexdigest() == SEED_SHA256


def test_request_route_relays_with_the_three_callbacks(core, calls, make_ctx):
    engine = _seed_engine(core, SeedDoubles(calls))
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert calls.names() == ["info", "maxfwd.process_maxfwd", "pv.sets", "tm.t_on_branch",
                             "tm.t_on_reply", "tm.t_on_failure", "tm.t_relay"]
    assert calls.args("info") == [("===== request - from kamailio lua script\n",)]
    assert calls.args("maxfwd.process_maxfwd") == [(10,)]
    assert ctx.dst_uri == "sip:127.0.0.1:5080"
    routes = ctx.mod_state["tm_doubles"]
    assert routes == {"branch": "ksr_branch_route_one", "reply": "ksr_onreply_route_one",
                      "failure": "ksr_failure_route_one"}
    # every callback named to tm exists in the script and runs
    for kind, route in routes.items():
        cb_ctx = make_ctx()
        assert engine.has_route(route)
        assert core.run_route(route, cb_ctx) == 1
        assert calls.log[-1] == ("info", cb_ctx, (f"===== {_label(kind)} - from kamailio lua script\n",))
    assert all(c is ctx for n, c, _ in calls.log[:7])


def _label(kind: str) -> str:
    return {"branch": "branch route", "reply": "onreply route", "failure": "failure route"}[kind]


def test_too_many_hops_is_answered_483_and_not_relayed(core, calls, make_ctx):
    _seed_engine(core, SeedDoubles(calls, maxfwd=-1))
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert calls.names() == ["info", "maxfwd.process_maxfwd", "sl.send_reply"]
    assert calls.args("sl.send_reply") == [(483, "Too Many Hops")]


def test_relay_failure_is_answered_500(core, calls, make_ctx):
    _seed_engine(core, SeedDoubles(calls, relay=-1))
    ctx = make_ctx()
    assert core.run_route("ksr_request_route", ctx) == 1
    assert calls.names()[-2:] == ["tm.t_relay", "sl.send_reply"]
    assert calls.args("sl.send_reply") == [(500, "Server error")]


def test_reply_route(core, calls, make_ctx):
    engine = _seed_engine(core, SeedDoubles(calls))
    assert engine.has_route("ksr_reply_route")
    assert not engine.has_route("ksr_onsend_route")
    ctx = make_ctx()
    assert core.run_route("ksr_reply_route", ctx) == 1
    assert calls.log == [("info", ctx, ("===== response - from kamailio lua script\n",))]


def test_seed_script_runs_under_the_module_with_the_seeds_modparams(core, calls, make_ctx):
    """The seed's kamailio.cfg sets load and two (deprecated) register params."""
    import kemi_engine_lua
    from kemi_core.testing import ModuleLoader

    core.registry.add(SeedDoubles(calls).exports())
    loader = ModuleLoader(core, available={})
    loader.register("app_lua", kemi_engine_lua)
    core.set_param("app_lua", "load", str(SEED_SCRIPT))
    core.set_param("app_lua", "register", "maxfwd")
    core.set_param("app_lua", "register", "sl")
    loader.init_all()
    engine = core.engine_specs["lua"].factory(core)
    core.engine = engine
    loader.child_init_all(1)
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert "tm.t_relay" in calls.names()


def test_with_the_real_core_exports(core, make_engine, make_ctx, caplog):
    """KSR core functions, KSR.pv and the legacy sr calls against kemi_core.core_exports."""
    from kemi_core.testing import add_core_exports

    add_core_exports(core)
    engine = make_engine("""
function ksr_request_route()
  KSR.info("core info from lua")
  sr.pv.sets("$du", "sip:127.0.0.1:5080")
  sr.pv.seti("$var(n)", 41)
  sr.log("info", "legacy log line")
  RESULT = KSR.pv.get("$du") .. "|" .. (KSR.pv.geti("$var(n)") + 1)
  KSR.x.exit()
  RESULT = "not reached"
end
""")
    ctx = make_ctx()
    with caplog.at_level(logging.INFO):
        assert core.run_route("ksr_request_route", ctx) == 1
    assert ctx.dst_uri == "sip:127.0.0.1:5080"
    assert engine.state is not None
    assert engine.state.runtime.eval("RESULT") == "sip:127.0.0.1:5080|42"
    assert "core info from lua" in caplog.text and "legacy log line" in caplog.text
