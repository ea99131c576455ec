"""Embedded JavaScript interpreters from PyPI, measured side by side for kemi's jsdt engine.

Each candidate is installed into its own virtual environment (two of them ship a module named
``quickjs``), under ``--venvs`` (default ``~/.cache/kemi-bench/js``), and probed in its own
process so memory figures start from a clean interpreter. What a probe measures:

- ``call_ns``: a JS loop calling a Python function ``f(i, "x")`` that returns 1 (the shape of a
  ``KSR.<module>.<function>(int, str)`` call), ns per call, best of 5 rounds; ``js_ns`` is the
  same loop calling a JS function, so ``call_ns - js_ns`` is what crossing into Python costs;
- ``types``: what Python receives for JS ``1``, ``1.5``, ``"s"``, ``null`` and what JS sees
  (``typeof``) for a Python ``int``, ``str`` and ``None`` result; ``big``: a Python 2**40
  returned to JS and back;
- ``mem_kib``: resident memory per interpreter with Kamailio's official JS routing file loaded
  (20 interpreters in one process, RSS growth / 20);
- ``error``: the text of an Error thrown two functions deep in a file named ``route.js``;
  ``py_error``: what reaches Python when the Python function raises;
- ``interrupt``: seconds until a runaway loop stops with a 0.2 s limit, or why it cannot;
  ``limit_and_calls``: whether JS may still call Python while such a limit is set.

    python bench/js_interpreters.py [--only quickjs,pyduktape2] [--venvs DIR] [--calls 200000]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: name -> (pip requirement, what it is)
CANDIDATES: dict[str, tuple[str, str]] = {
    "quickjs": ("quickjs==1.19.4", "QuickJS 2021 (PetterS' bindings)"),
    "quickjs-ng": ("quickjs-ng==0.17.0.2", "QuickJS-ng (genotrance's bindings)"),
    "pyduktape2": ("pyduktape2==0.5.0", "Duktape 2.x (Kamailio's app_jsdt embeds Duktape)"),
    "dukpy": ("dukpy==0.6.0", "dukpy (QuickJS inside since 0.5; JSON-encoded calls)"),
    "mini-racer": ("mini-racer==0.14.1", "V8 (async-only Python callbacks)"),
    "stpyv8": ("stpyv8==13.1.201.22", "V8 (Boost.Python bindings)"),
    "pythonmonkey": ("pythonmonkey==1.4.1", "SpiderMonkey (one global runtime per process)"),
    "lupa": ("lupa==2.8", "not JS: Lua 5.4 through lupa, kemi's lua engine, for scale"),
}

EXAMPLE_JS = Path("/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js")
LOOP_JS = "function loop(n) { for (var i = 0; i < n; i++) f(i, 'x'); return n; }\n"
JSLOOP_JS = ("function g(a, b) { return 1; }\n"
             "function jsloop(n) { for (var i = 0; i < n; i++) g(i, 'x'); return n; }\n")
ERROR_JS = ("function inner() { throw new Error('boom'); }\n"
            "function outer() { inner(); }\n"
            "outer();\n")
#: A runaway loop, bounded: 5 s of wall time when nothing interrupts it.
RUNAWAY_JS = "var end = Date.now() + 5000; while (Date.now() < end) {}"
TYPES_JS = "[f(1), f(1.5), f('s'), f(null), typeof r_int(), typeof r_str(), r_none() === null]"


#: A probe's figures so far; printed after each step, so a crash keeps what came before.
OUT: dict[str, Any] = {}


def emit(step: str) -> None:
    """Print the figures so far, naming the step that runs next."""
    OUT["step"] = step
    print(json.dumps(OUT, default=str), flush=True)


def best(rounds: int, run: Callable[[], Any]) -> float:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return min(out)


def rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def example_source() -> str:
    return EXAMPLE_JS.read_text() if EXAMPLE_JS.exists() else "function ksr_request_route() {}\n"


def ns_per_call(run: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """ns per call of ``run()``, a loop of ``n`` calls (best of ``rounds``)."""
    return best(rounds, run) / n * 1e9


def mem_per_interpreter(load: Callable[[str], Any], keep: list[Any]) -> float:
    """KiB of RSS per interpreter made by ``load(source)`` with Kamailio's JS routing file
    (20 of them, kept alive in ``keep``)."""
    emit("mem")
    src = example_source()
    before = rss_kib()
    for _ in range(20):
        keep.append(load(src))
    return (rss_kib() - before) / 20


def record_error(key: str, run: Callable[[], Any],
                 text: Callable[[Exception], str] = str) -> None:
    """OUT[key] = what ``run()`` raised, as ``text`` writes it (nothing when it did not raise)."""
    try:
        run()
    except Exception as exc:
        OUT[key] = text(exc)


def first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]} ..."


class Recorder:
    """The Python side of the calls: what f() received, what the result functions give."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.recording = False

    def f(self, *args: Any) -> int:
        if self.recording:
            self.seen.append(type(args[0]).__name__)
        return 1

    @staticmethod
    def r_int() -> int:
        return 7

    @staticmethod
    def r_str() -> str:
        return "s"

    @staticmethod
    def r_none() -> None:
        return None

    @staticmethod
    def big() -> int:
        return 2**40

    @staticmethod
    def bad(*args: Any) -> int:
        raise ValueError("python side failed")


# ---- one probe per binding (each runs in the candidate's own venv) -------------------------

def probe_quickjs(calls: int) -> dict[str, Any]:
    import quickjs

    rec = Recorder()
    out = OUT

    def new() -> Any:
        ctx = quickjs.Context()
        for name in ("f", "r_int", "r_str", "r_none", "big", "bad"):
            ctx.add_callable(name, getattr(rec, name))
        return ctx

    def loaded(src: str) -> Any:
        c = new()
        c.eval(src)
        return c

    ctx = new()
    ctx.eval(LOOP_JS + JSLOOP_JS)
    loop, jsloop = ctx.get("loop"), ctx.get("jsloop")
    out["call_ns"] = ns_per_call(lambda: loop(calls), calls)
    out["js_ns"] = ns_per_call(lambda: jsloop(calls), calls)
    rec.recording = True
    arr = ctx.eval(TYPES_JS)
    out["types"] = {"py_got": rec.seen, "js_got": json.loads(arr.json())}
    out["big"] = ctx.eval("big()")
    record_error("error", lambda: ctx.eval(ERROR_JS))
    record_error("py_error", lambda: ctx.eval("function k() { bad(1); }\nk();"),
                 lambda exc: f"{type(exc).__name__}: {exc}")
    keep: list[Any] = []
    out["mem_kib"] = mem_per_interpreter(loaded, keep)
    emit('interrupt')
    ctx.set_time_limit(0.2)
    t = time.perf_counter()
    try:
        ctx.eval(RUNAWAY_JS)
    except quickjs.JSException as exc:
        out["interrupt"] = f"{time.perf_counter() - t:.2f} s ({str(exc).splitlines()[0]})"
    else:
        out["interrupt"] = "not interrupted (the loop ran its 5 s)"
    try:  # a routing script calls KSR functions: does the limit allow that?
        ctx.eval("f(1, 'x')")
        out["limit_and_calls"] = "calls into Python work with a time limit set"
    except quickjs.JSException as exc:
        out["limit_and_calls"] = str(exc).splitlines()[0]
    return out


def probe_pyduktape2(calls: int) -> dict[str, Any]:
    import pyduktape2

    rec = Recorder()
    out = OUT

    def new() -> Any:
        ctx = pyduktape2.DuktapeContext()
        ctx.set_globals(f=rec.f, r_int=rec.r_int, r_str=rec.r_str, r_none=rec.r_none,
                        big=rec.big, bad=rec.bad)
        return ctx

    def loaded(src: str) -> Any:
        c = new()
        c.eval_js(src)
        return c

    out["interrupt"] = "no API (Duktape's exec timeout is a compile-time option, not built in)"
    ctx = new()
    ctx.eval_js(LOOP_JS + JSLOOP_JS)
    out["call_ns"] = ns_per_call(lambda: ctx.eval_js(f"loop({calls})"), calls)
    out["js_ns"] = ns_per_call(lambda: ctx.eval_js(f"jsloop({calls})"), calls)
    rec.recording = True
    out["types"] = {"py_got": None, "js_got": json.loads(ctx.eval_js(f"JSON.stringify({TYPES_JS})"))}
    out["types"]["py_got"] = rec.seen
    out["big"] = ctx.eval_js("big()")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"route-{os.getpid()}.js"
    path.write_text(ERROR_JS)
    try:
        record_error("error", lambda: ctx.eval_js_file(str(path)))
    finally:
        path.unlink()
    keep: list[Any] = []
    out["mem_kib"] = mem_per_interpreter(loaded, keep)
    record_error("py_error", lambda: ctx.eval_js("function k() { bad(1); }\nk();"), first_line)
    emit("new contexts after a Python exception crossed JS")
    for _ in range(20):
        c = new()
        c.eval_js("var x = 1;")
        keep.append(c)
    return out


def probe_dukpy(calls: int) -> dict[str, Any]:
    import dukpy

    rec = Recorder()
    out = OUT

    def new() -> Any:
        interp = dukpy.JSInterpreter()
        for name in ("f", "r_int", "r_str", "r_none", "big", "bad"):
            interp.export_function(name, getattr(rec, name))
        return interp

    def loaded(src: str) -> Any:
        c = new()
        c.evaljs(src)
        return c

    interp = new()
    interp.evaljs("globalThis.f = function(a, b) { return call_python('f', a, b); };"
                  "globalThis.loop = " + LOOP_JS.replace("function loop", "function") + ";"
                  + JSLOOP_JS + "null;")
    n = max(calls // 20, 1000)  # JSON both ways: far slower, fewer calls
    out["call_ns"] = ns_per_call(lambda: interp.evaljs(f"loop({n})"), n, rounds=3)
    out["js_ns"] = ns_per_call(lambda: interp.evaljs(f"jsloop({calls})"), calls, rounds=3)
    rec.recording = True
    got = interp.evaljs("[call_python('f', 1), call_python('f', 1.5), call_python('f', 's'),"
                        " call_python('f', null), typeof call_python('r_int'),"
                        " typeof call_python('r_str'), call_python('r_none') === null]")
    out["types"] = {"py_got": rec.seen, "js_got": got}
    out["big"] = interp.evaljs("call_python('big')")
    record_error("error", lambda: interp.evaljs(ERROR_JS))
    record_error("py_error", lambda: interp.evaljs("function k() { call_python('bad', 1); }\nk();"),
                 first_line)
    out["mem_kib"] = mem_per_interpreter(loaded, [])
    out["interrupt"] = "no API"
    return out


def probe_mini_racer(calls: int) -> dict[str, Any]:
    import asyncio

    from py_mini_racer import MiniRacer, mini_racer

    out = OUT
    n = 2000  # each call is a Promise resolved on asyncio: far slower, fewer calls

    async def f(*args: Any) -> int:
        return 1

    async def measure() -> None:
        with mini_racer() as mr:
            async with mr.wrap_py_function(f) as jsf:
                mr.eval("x => this.f = x")(jsf)
                loop = mr.eval("(async (n) => { for (let i = 0; i < n; i++) await f(i, 'x'); })")
                t = time.perf_counter()
                await loop(n)
                out["call_ns"] = (time.perf_counter() - t) / n * 1e9

    asyncio.run(measure())
    mr = MiniRacer()
    mr.eval(JSLOOP_JS)
    out["js_ns"] = ns_per_call(lambda: mr.eval(f"jsloop({calls})"), calls)
    out["types"] = "Python functions are async: JS gets a Promise, never a value in the same call"
    record_error("error", lambda: mr.eval(ERROR_JS))

    def loaded(src: str) -> Any:
        c = MiniRacer()
        c.eval(src)
        return c

    out["mem_kib"] = mem_per_interpreter(loaded, [])
    emit('interrupt')
    t = time.perf_counter()
    try:
        mr.eval(RUNAWAY_JS, timeout_sec=0.2)
    except Exception as exc:
        out["interrupt"] = f"{time.perf_counter() - t:.2f} s ({type(exc).__name__})"
    else:
        out["interrupt"] = "not interrupted (the loop ran its 5 s)"
    return out


def probe_stpyv8(calls: int) -> dict[str, Any]:
    import threading

    import STPyV8

    rec = Recorder()
    out = OUT

    class Global(STPyV8.JSClass):  # type: ignore[misc,name-defined]
        def f(self, *args: Any) -> int:
            return rec.f(*args)

        def r_int(self) -> int:
            return 7

        def r_str(self) -> str:
            return "s"

        def r_none(self) -> None:
            return None

        def big(self) -> int:
            return 2**40

        def bad(self, *args: Any) -> int:
            raise ValueError("python side failed")

    ctx = STPyV8.JSContext(Global())
    with ctx:
        ctx.eval(LOOP_JS + JSLOOP_JS)
        out["call_ns"] = ns_per_call(lambda: ctx.eval(f"loop({calls})"), calls)
        out["js_ns"] = ns_per_call(lambda: ctx.eval(f"jsloop({calls})"), calls)
        rec.recording = True
        got = ctx.eval(f"JSON.stringify({TYPES_JS})")
        out["types"] = {"py_got": rec.seen, "js_got": json.loads(got)}
        out["big"] = ctx.eval("big()")
        record_error("error", lambda: ctx.eval(ERROR_JS, "route.js"),
                     lambda exc: f"{exc}\n{getattr(exc, 'stackTrace', '')}")
        record_error("py_error", lambda: ctx.eval("function k() { bad(1); }\nk();", "k.js"),
                     lambda exc: f"{type(exc).__name__}: {exc}")

    def loaded(src: str) -> Any:
        c = STPyV8.JSContext(Global())
        with c:
            c.eval(src)
        return c

    out["mem_kib"] = mem_per_interpreter(loaded, [])
    out["mem_note"] = "contexts of one shared isolate"
    with ctx:
        emit('interrupt')
        timer = threading.Timer(0.2, STPyV8.JSEngine.terminateAllThreads)
        timer.start()
        t = time.perf_counter()
        try:
            ctx.eval(RUNAWAY_JS)
        except Exception as exc:
            out["interrupt"] = (f"{time.perf_counter() - t:.2f} s (terminateAllThreads from a "
                                f"timer thread: {type(exc).__name__})")
        else:
            out["interrupt"] = "not interrupted (the loop ran its 5 s)"
    return out


def probe_pythonmonkey(calls: int) -> dict[str, Any]:
    import pythonmonkey as pm

    rec = Recorder()
    out = OUT
    for name in ("f", "r_int", "r_str", "r_none", "big", "bad"):
        pm.globalThis[name] = getattr(rec, name)
    pm.eval(LOOP_JS + JSLOOP_JS)
    loop, jsloop = pm.globalThis["loop"], pm.globalThis["jsloop"]
    out["call_ns"] = ns_per_call(lambda: loop(calls), calls)
    out["js_ns"] = ns_per_call(lambda: jsloop(calls), calls)
    rec.recording = True
    got = pm.eval(f"JSON.stringify({TYPES_JS})")
    out["types"] = {"py_got": rec.seen, "js_got": json.loads(got)}
    out["big"] = pm.eval("big()")
    record_error("error", lambda: pm.eval(ERROR_JS, {"filename": "route.js"}))
    record_error("py_error", lambda: pm.eval("function k() { bad(1); }\nk();", {"filename": "k.js"}),
                 lambda exc: f"{type(exc).__name__}: {str(exc).splitlines()[1]} ...")
    out["mem_kib"] = None
    out["mem_note"] = "one SpiderMonkey global per process: no second interpreter to measure"
    out["interrupt"] = "no API"
    return out


def probe_lupa(calls: int) -> dict[str, Any]:
    """Not JavaScript: kemi's Lua engine's bridge (lupa), as the yardstick."""
    import lupa.lua54 as lua

    rec = Recorder()
    out = OUT
    rt = lua.LuaRuntime(unpack_returned_tuples=True)
    loop = rt.eval("function(f, n) for i = 1, n do f(i, 'x') end return n end")
    jsloop = rt.eval("function(n) local g = function(a, b) return 1 end "
                     "for i = 1, n do g(i, 'x') end return n end")
    out["call_ns"] = ns_per_call(lambda: loop(rec.f, calls), calls)
    out["js_ns"] = ns_per_call(lambda: jsloop(calls), calls)

    def loaded(_src: str) -> Any:  # not JS: a Lua runtime with an empty route
        r = lua.LuaRuntime()
        r.execute("function ksr_request_route() end")
        return r

    out["mem_kib"] = mem_per_interpreter(loaded, [])
    out["interrupt"] = "debug.sethook count hook (kemi uses it for the watchdog)"
    return out


PROBES: dict[str, Callable[[int], dict[str, Any]]] = {
    "quickjs": probe_quickjs,
    "quickjs-ng": probe_quickjs,
    "pyduktape2": probe_pyduktape2,
    "dukpy": probe_dukpy,
    "mini-racer": probe_mini_racer,
    "stpyv8": probe_stpyv8,
    "pythonmonkey": probe_pythonmonkey,
    "lupa": probe_lupa,
}


# ---- driver ---------------------------------------------------------------------------------

def venv_python(venvs: Path, name: str) -> Path:
    """The candidate's venv (made and filled on first use with its pinned requirement)."""
    env = venvs / name
    python = env / "bin" / "python"
    stamp = env / ".installed"
    requirement = CANDIDATES[name][0]
    if not stamp.exists() or stamp.read_text() != requirement:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
        # pythonmonkey needs pminit, published only as a source distribution
        binary = ":all:" if name != "pythonmonkey" else name
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"--only-binary={binary}",
                        requirement], check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(requirement)
    return python


def version_of(python: Path, name: str) -> str:
    dist = CANDIDATES[name][0].split("==")[0]
    res = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
                         capture_output=True, text=True)
    return res.stdout.strip()


def run_probe(python: Path, name: str, calls: int) -> dict[str, Any]:
    res = subprocess.run([str(python), __file__, "--probe", name, "--calls", str(calls)],
                         capture_output=True, text=True, timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"failed": f"exit {res.returncode}: {res.stderr.strip()[-400:]}"}
    out: dict[str, Any] = json.loads(lines[-1])
    step = out.pop("step")
    if res.returncode != 0:
        how = f"signal {-res.returncode}" if res.returncode < 0 else f"exit {res.returncode}"
        where = "at teardown" if step == "done" else f"in step: {step}"
        last = res.stderr.strip().splitlines()[-1:]
        out["crash"] = f"{how} {where}" + (f": {last[0]}" if last else "")
        out.setdefault(step, "crashed the process")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(CANDIDATES))
    ap.add_argument("--venvs", default=str(Path.home() / ".cache" / "kemi-bench" / "js"))
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        PROBES[args.probe](args.calls)
        emit("done")
        return
    venvs = Path(args.venvs)
    venvs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in args.only.split(","):
        python = venv_python(venvs, name)
        res = run_probe(python, name, args.calls)
        res["version"] = version_of(python, name)
        res["what"] = CANDIDATES[name][1]
        results[name] = res
        call, js = res.get("call_ns"), res.get("js_ns")
        mem = res.get("mem_kib")
        print(f"{name:13} {res['version']:13} "
              f"call {call if call is None else f'{call:9.0f}'} ns  "
              f"(JS->JS {js if js is None else f'{js:5.0f}'} ns)  "
              f"mem {mem if mem is None else f'{mem:7.0f}'} KiB/interp  "
              f"interrupt: {res.get('interrupt', '-')}", flush=True)
        for key in ("types", "big", "error", "py_error", "limit_and_calls", "crash", "failed"):
            if key in res:
                print(f"    {key}: {json.dumps(res[key])}")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
