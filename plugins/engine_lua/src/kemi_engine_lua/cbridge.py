"""KSR calls and route runs through ``_cbridge.c`` in a lupa.lua54 runtime, when they can be.

With it, each KSR function a script resolves is a Lua C closure (no lupa call machinery per
crossing), and each route run from Python is a C call that does the prelude's runner's work
(or calls it) and keeps the GIL while Lua runs; LuaEngine.run and the prelude's facts() are C
calls too (``engine_run``, ``facts``: no Python frame of the engine's per route run). The same
values and errors: every unusual argument, result and exception
goes through lupa. lupa's path stays the reference and the fallback: no compiled ``_cbridge``
(installed without a C compiler), a Lua other than 5.4, lupa's Lua functions not found, or
``KEMI_LUA_CBRIDGE=0`` in the environment (``=calls``: the KSR calls only).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

try:
    from kemi_engine_lua import _cbridge
except ImportError:  # built without a C compiler: every call through lupa
    _cbridge = None  # type: ignore[assignment]

_ENV = os.environ.get("KEMI_LUA_CBRIDGE", "1")
#: KSR calls as C closures (False: lupa's calls, the reference path; tests set it)
enabled = _ENV != "0"
#: route runs from Python as C calls, with the GIL kept while Lua runs
runs = _ENV not in ("0", "calls")

_found: dict[str, bool] = {}  # lupa module file -> its Lua functions were found

_LOADLIB = ("local p, f = ...\nlocal loadlib = package and package.loadlib\n"
            "if loadlib == nil then return nil end\nreturn (loadlib(p, f))")


class Bridge:
    """The C bridge's pieces in one runtime."""

    def __init__(self, lua: ModuleType, runtime: Any, make: Any, run_maker: Any) -> None:
        self.runtime = runtime
        #: Lua: make(id(f), f, take) -> the C closure calling the Python callable f
        self.make = make
        self.take = _cbridge.take
        self._run_maker = run_maker
        self._box = runtime.table() if run_maker is not None else None
        self._lua_error = lua.LuaError

    def runner(self, fn: Any, name: str, crun: Any) -> Callable[..., Any]:
        """The C run of the script's function ``name``, with the prelude's runner ``fn``
        (lupa's function object) for the unusual runs, or ``fn`` itself; ``crun``: the
        prelude's {handler, failed, F} (the runner's pieces the C run uses)."""
        if self._run_maker is None or crun is None:
            return fn  # type: ignore[no-any-return]
        self._run_maker(fn, self._box, name, crun[1], crun[2], crun[3])
        run = _cbridge.take()
        if run is None:
            return fn  # type: ignore[no-any-return]
        run.bind(fn, self._box, self._lua_error, self.runtime)  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]


def bridge(lua: ModuleType, runtime: Any) -> Bridge | None:
    """The C bridge for ``runtime``; None when KSR calls stay lupa's."""
    if not enabled or _cbridge is None or lua.__name__ != "lupa.lua54":
        return None
    path = lua.__file__
    if path is None:
        return None
    found = _found.get(path)
    if found is None:
        try:
            _cbridge.init(path)
            found = True
        except OSError:  # a lupa build that does not export Lua's functions
            found = False
        _found[path] = found
    if not found:
        return None
    make = runtime.execute(_LOADLIB, _cbridge.__file__, "kemi_lua_make")
    if lua.lua_type(make) != "function":
        return None
    run_maker = runtime.execute(_LOADLIB, _cbridge.__file__, "kemi_lua_runner") if runs else None
    if run_maker is not None and lua.lua_type(run_maker) != "function":
        run_maker = None
    return Bridge(lua, runtime, make, run_maker)


def engine_run(engine: Any, pure: Callable[..., Any]) -> Callable[..., Any] | None:
    """LuaEngine.run without a Python frame of its own (``_cbridge.engine_runner``: the usual
    run of a made runner; ``pure``, the method, for the rest); None: no C bridge."""
    if not enabled or _cbridge is None:
        return None
    return _cbridge.engine_runner((engine, pure))  # type: ignore[no-any-return]


def facts(holder: Any, pure: Callable[[], Any]) -> Callable[[], Any]:
    """The prelude's ``facts()`` over ``holder.ctx`` (``_cbridge.facts_reader``), else
    ``pure`` (Resolver.facts bound), the reference."""
    if not enabled or _cbridge is None:
        return pure
    return _cbridge.facts_reader(holder)  # type: ignore[no-any-return]
