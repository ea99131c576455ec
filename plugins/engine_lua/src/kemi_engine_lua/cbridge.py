"""KSR calls through ``_cbridge.c`` in a lupa.lua54 runtime, when they can be.

With it, each KSR function a script resolves is a Lua C closure (no lupa call machinery per
crossing: ~0.7-1.7k machine instructions less each); the same values and errors: every unusual
argument, result and exception goes through lupa. lupa's path stays the reference and the
fallback: no compiled ``_cbridge`` (installed without a C compiler), a Lua other than 5.4,
lupa's Lua functions not found, or ``KEMI_LUA_CBRIDGE=0`` in the environment.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

try:
    from kemi_engine_lua import _cbridge
except ImportError:  # built without a C compiler: every call through lupa
    _cbridge = None  # type: ignore[assignment]

_ENV = os.environ.get("KEMI_LUA_CBRIDGE", "1")
#: KSR calls as C closures (False: lupa's calls, the reference path; tests set it)
enabled = _ENV != "0"

_found: dict[str, bool] = {}  # lupa module file -> its Lua functions were found

_LOADLIB = ("local p, f = ...\nlocal loadlib = package and package.loadlib\n"
            "if loadlib == nil then return nil end\nreturn (loadlib(p, f))")


class Bridge:
    """The C bridge's pieces in one runtime."""

    def __init__(self, make: Any) -> None:
        #: Lua: make(id(f), f, take) -> the C closure calling the Python callable f
        self.make = make
        self.take = _cbridge.take


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
    return Bridge(make)
