"""Micro benchmark: cost of a KSR call from Lua, first-access resolution vs the cached table read.

Not a test. Run: ``.venv/bin/python plugins/engine_lua/bench_lua_calls.py [iterations]``.
Loops run inside Lua so the figures are per Lua-side call, without Python loop overhead.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from kemi_core.api import Core, CoreConfig, MsgContext, RecvInfo, export
from kemi_engine_lua import LuaEngine, LuaSettings

SCRIPT = """
function ksr_request_route() return 1 end
local function noop(a) return 1 end
function bench_lua_only(n) for i = 1, n do noop(1) end end
function bench_cached(n) for i = 1, n do KSR.t.f(1) end end
function bench_cached_str(n) for i = 1, n do KSR.t.s(200, "OK") end end
function bench_local(n) local f = KSR.t.f; for i = 1, n do f(1) end end
function bench_uncached(n)
  local m = KSR.t
  for i = 1, n do rawset(m, "f", nil); KSR.t.f(1) end
end
function bench_uncached_module(n)
  for i = 1, n do rawset(KSR, "t", nil); KSR.t.f(1) end
end
"""


def main(n: int) -> None:
    core = Core(CoreConfig())
    core.registry.add([export("t", "f", lambda ctx, a: 1, "i"),
                       export("t", "s", lambda ctx, code, reason: 1, "is")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.lua"
        path.write_text(SCRIPT)
        engine = LuaEngine(core, LuaSettings(scripts=(str(path),)))
        engine.load()
    assert engine.state is not None
    g = engine.state.runtime.globals()
    ctx = MsgContext(msg=None, rcv=RecvInfo("udp", "127.0.0.1", 5060, "127.0.0.1", 5060),  # type: ignore[arg-type]
                     core=core)
    engine.ctx = ctx
    print(f"{engine.state.lua_version}, {n} calls each")
    for name, label in [
        ("bench_lua_only", "Lua -> Lua function (baseline)"),
        ("bench_uncached_module", "KSR.t.f(1), module+function resolved each call"),
        ("bench_uncached", "KSR.t.f(1), function resolved each call"),
        ("bench_cached", "KSR.t.f(1), cached (two table reads + call)"),
        ("bench_cached_str", "KSR.t.s(200, \"OK\"), cached"),
        ("bench_local", "local f = KSR.t.f; f(1)"),
    ]:
        g[name](1000)  # warm up
        t0 = time.perf_counter_ns()
        g[name](n)
        per = (time.perf_counter_ns() - t0) / n
        print(f"{label:50s} {per:8.0f} ns/call")
    t0 = time.perf_counter_ns()
    for _ in range(n // 10):
        engine.run("ksr_request_route", ctx)
    per = (time.perf_counter_ns() - t0) / (n // 10)
    print(f"{'engine.run(empty ksr_request_route) from Python':50s} {per:8.0f} ns/run")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
