"""One Lua runtime with the scripts loaded: built at load, in each worker and on reload.

The Lua version is pinned (``lupa.lua54`` unless the ``lua_version`` modparam says otherwise):
a bare ``import lupa`` picks the newest Lua lupa ships, which would change under our feet.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from kemi_core.api import ModuleError, ScriptDrop, ScriptError, ScriptExit
from kemi_engine_lua.cbridge import bridge, facts
from kemi_engine_lua.prelude import PRELUDE
from kemi_engine_lua.resolver import Resolver

#: lua_version modparam -> lupa extension modules to try, in order.
LUA_MODULES: dict[str, tuple[str, ...]] = {
    "5.4": ("lupa.lua54",),
    "5.3": ("lupa.lua53",),
    "5.2": ("lupa.lua52",),
    "5.1": ("lupa.lua51",),
    "5.5": ("lupa.lua55",),
    "jit": ("lupa.luajit21", "lupa.luajit20"),
}
DEFAULT_LUA_VERSION = "5.4"


def lupa_module(version: str) -> ModuleType:
    """The lupa extension for ``version``; ModuleError naming what is available otherwise."""
    names = LUA_MODULES.get(version)
    if names is None:
        raise ModuleError(f"app_lua: lua_version {version!r} is not one of "
                          f"{', '.join(LUA_MODULES)}")
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    have = [v for v, mods in LUA_MODULES.items() if any(_importable(m) for m in mods)]
    raise ModuleError(f"app_lua: this lupa build has no Lua {version} "
                      f"(available: {', '.join(have) or 'none'})")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


#: With the watchdog on, Lua calls back into Python every this many VM instructions (a few
#: milliseconds of a busy Lua loop), so a stuck script still lets the worker answer the
#: watchdog's "where are you?" signal (Python runs signal handlers only between bytecodes).
WATCH_COUNT = 1_000_000

_WATCH_HOOK = "local poll, count = ...\ndebug.sethook(function() poll() end, '', count)\n"


def _let_signals_run() -> None:
    """Called from the Lua count hook: entering Python runs the pending signal handlers."""


_RUNNERS_MAX = 256


def _is_flow(error: object) -> bool:
    """Whether an error raised in Lua is KSR.x.exit's or KSR.x.drop's (no traceback kept)."""
    return isinstance(error, ScriptExit | ScriptDrop)


#: Resolver's own facts (a test may put another in its place, to count the reads)
_RESOLVER_FACTS = Resolver.facts


def _facts(resolver: Resolver) -> Callable[[], Any]:
    """What the prelude calls for the running message's facts: compiled when the resolver's
    facts is Resolver's own."""
    if type(resolver).facts is _RESOLVER_FACTS:
        return facts(resolver.holder, resolver.facts)
    return resolver.facts


class LuaState:
    """A Lua runtime with the prelude and every script loaded, checked."""

    def __init__(self, lua: ModuleType, resolver: Resolver, watch_count: int = 0) -> None:
        self.runtime = lua.LuaRuntime(encoding="utf-8", register_eval=False,
                                      register_builtins=False, unpack_returned_tuples=True)
        self.lua_version = str(self.runtime.lua_implementation)  # "Lua 5.4", "LuaJIT 2.1..."
        #: KSR calls as Lua C closures, route runs as C calls (cbridge.py); None: lupa's
        self.bridge = bridge(lua, self.runtime)
        c = self.bridge
        runner, load, has, watch, crun = self.runtime.execute(
            PRELUDE, resolver.ksr_top, resolver.ksr_member, resolver.sr_top, resolver.sr_member,
            _is_flow, _facts(resolver), c and c.make, id, c and c.take)
        self._runner = runner
        self._crun = crun  # the C run's pieces of the prelude (None without the bridge)
        #: name -> runner(*args): what the function returned, or a tuple (code, value,
        #: trace) when it failed (1) or is not defined (2); see :meth:`runner`.
        self.runners: dict[str, Callable[..., Any]] = {}
        self._load = load
        self._has = has
        self._watch = watch
        #: has(name) answers, kept while no function is assigned to a new global (stays
        #: empty when the script put its own metatable on _G: every has() asks Lua).
        self.routes: dict[str, bool] = {}
        self._keep_routes = False
        if watch_count > 0:
            self.runtime.execute(_WATCH_HOOK, _let_signals_run, watch_count)

    def runner(self, name: str) -> Callable[..., Any]:
        """The Lua function running the script's function ``name`` (called on every message,
        with an event callback's event name as argument): made once per name, so a run
        passes no name into Lua."""
        fn = self.runners.get(name)
        if fn is None:
            if len(self.runners) >= _RUNNERS_MAX:  # names a script made up at run time
                self.runners.clear()
            fn = self._runner(name)
            if self.bridge is not None:
                fn = self.bridge.runner(fn, name, self._crun)
            self.runners[name] = fn
        return fn

    def has(self, name: str) -> bool:
        """Whether the global ``name`` is a function; asked for every reply (ksr_reply_route)
        and forwarded request (onsend): the engine reads ``routes`` first, once the scripts
        are loaded (see watch_routes), and calls into Lua only on a miss."""
        known = bool(self._has(name))
        if self._keep_routes:
            self.routes[name] = known
        return known

    def watch_routes(self) -> None:
        """Start keeping has()'s answers: called once the scripts are loaded. A function
        assigned to a new global later (a route defined at run time) empties ``routes``; so
        does :meth:`forget_routes` when a route said to be there turned out to be gone."""
        self._keep_routes = bool(self._watch(self.routes.clear))

    def forget_routes(self) -> None:
        self.routes.clear()

    def script_location(self) -> str | None:
        """``file:line`` of the script line running now (called from inside a KSR function;
        used by the debugger's cfgtrace, so only paid for when tracing)."""
        getinfo = self.runtime.eval("debug.getinfo")
        for level in range(1, 12):
            info = getinfo(level, "Sl")
            if info is None:
                return None
            source = info["source"]
            if isinstance(source, str) and source.startswith("@") and info["currentline"] > 0:
                return f"{source[1:]}:{info['currentline']}"
        return None

    def load_scripts(self, paths: Sequence[str], sources: Sequence[str] | None = None) -> None:
        """Compile and run each script in order (from ``sources`` when given: the texts a
        reload published); ScriptError with ``file:line: reason``."""
        for i, path in enumerate(paths):
            source = sources[i] if sources is not None else None
            if source is None and not os.path.isfile(path):
                raise ScriptError(f"{path}: Lua script not found")
            code, value, trace = self._load(path, source)
            if code == 3:  # KSR.x.exit() at the top of a script (the prelude's EXIT)
                value = ScriptExit()
            if code != 0:
                raise ScriptError(load_error_text(path, value, trace))


def load_error_text(path: str, value: Any, trace: Any) -> str:
    """The first line of Lua's report (``file:line: reason``), else the Python exception."""
    if isinstance(value, str):
        text = untruncate(value, (path,))
        return text if text.startswith(path) else f"{path}: {text}"
    if isinstance(trace, str) and trace:
        return untruncate(trace.splitlines()[0], (path,))
    return f"{path}: {value!r}"


_PRELUDE_FRAMES = ("[C]: in function 'xpcall'", '[string "<python>"]')


def clean_trace(text: str, paths: Sequence[str]) -> str:
    """A Lua traceback with full script paths and without the engine's own frames."""
    lines = []
    for line in text.splitlines():
        body = line.lstrip("\t")
        if body.startswith(_PRELUDE_FRAMES):
            continue
        lines.append(line[: len(line) - len(body)] + untruncate(body, paths))
    return "\n".join(lines)


def untruncate(text: str, paths: Sequence[str]) -> str:
    """Lua shortens long chunk names to ``...tail`` (LUA_IDSIZE): put the full path back."""
    if not text.startswith("..."):
        return text
    tail = text[3:].split(":", 1)[0]
    for path in paths:
        if tail and path.endswith(tail):
            return path + text[3 + len(tail):]
    return text


def build_state(lua: ModuleType, resolver: Resolver, scripts: Sequence[str],
                required: str | None, sources: Sequence[str] | None = None,
                watch_count: int = 0) -> LuaState:
    """A fresh runtime with ``scripts`` loaded; ``required`` must be a function in it."""
    if not scripts:
        raise ScriptError("app_lua: no script to load (set modparam(\"app_lua\", \"load\", ...))")
    state = LuaState(lua, resolver, watch_count)
    state.load_scripts(scripts, sources)
    if required and not state.has(required):
        raise ScriptError(f"{scripts[-1]}: the Lua script does not define function {required}()")
    state.watch_routes()
    return state
