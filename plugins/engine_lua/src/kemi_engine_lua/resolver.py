"""Name resolution behind the ``KSR`` and ``sr`` tables' ``__index`` (called once per name).

``KSR.<module>.<function>`` and ``KSR.<function>`` (core, module "") come from the KEMI
registry. ``KSR.x.exit`` / ``KSR.x.drop`` are app_lua's own in Kamailio: when no module exports
them to the registry, the engine supplies them here.

``sr`` is the Lua API of Kamailio before KEMI (the seed's example calls ``sr.maxfwd.process_maxfwd``
and ``sr.pv.sets``). kemi maps it onto the same registry: ``sr.<module>.<fn>`` is
``KSR.<module>.<fn>`` and ``sr.<fn>`` is ``KSR.<fn>``, except for the few names in the alias
tables below, which had other names or shapes in the old API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    KemiExport,
    KemiRegistry,
    flow_exports,
)
from kemi_engine_lua.binding import CtxHolder, LuaArgError, bind

#: KSR.x.exit/drop even when the registry lacks the core's exports (engine unit tests).
BUILTINS: dict[tuple[str, str], KemiExport] = {(e.module, e.name): e for e in flow_exports()}
_BUILTIN_MODULES = frozenset(m for m, _ in BUILTINS)

#: Exports that take any number of extra arguments after their declared ones (Kamailio's
#: KSR.x.modf("cfg_function", ...)); the extras reach the callable as strings.
VARIADIC = frozenset({("x", "modf")})

#: sr.<name> (top level) -> KSR (module, name) where the old API differs.
SR_TOP_ALIASES: dict[str, tuple[str, str]] = {
    "modf": ("x", "modf"),  # sr.modf("fn", ...) ran a cfg function; KEMI has it under x
}
#: sr.<module>.<name> -> KSR (module, name) where the old API differs. The calls the seed makes
#: (sr.maxfwd.process_maxfwd, sr.pv.sets/seti/get/unset, sr.sl.send_reply, sr.hdr.*) kept their
#: names in KEMI; add an entry here when an old member name is found that did not.
SR_MEMBER_ALIASES: dict[tuple[str, str], tuple[str, str]] = {}
#: sr.log(level, msg): level words of the old API -> core log function names.
SR_LOG_LEVELS = {
    "dbg": "dbg", "debug": "dbg", "info": "info", "notice": "notice", "warn": "warn",
    "warning": "warn", "err": "err", "error": "err", "crit": "crit", "alert": "crit",
}


class Resolver:
    """Looks names up in the registry and builds (once) the callables Lua caches."""

    def __init__(self, registry: KemiRegistry, holder: CtxHolder, log: logging.Logger,
                 log_mode: int = 0) -> None:
        self.registry = registry
        self.holder = holder
        self.log = log
        self.log_mode = log_mode
        self._bound: dict[tuple[str, str], Callable[..., Any]] = {}
        self._reported: set[str] = set()

    # ---- lookups ------------------------------------------------------------------------
    def export_for(self, module: str, name: str) -> KemiExport | None:
        exp = self.registry.lookup(module, name)
        return exp if exp is not None else BUILTINS.get((module, name))

    def has_module(self, module: str) -> bool:
        # "x" always exists: exit/drop fall back to the engine's own (see BUILTINS)
        return module != "" and (self.registry.has_module(module) or module in _BUILTIN_MODULES)

    def function(self, module: str, name: str) -> Callable[..., Any] | None:
        """The bound callable for KSR.<module>.<name>, built on first use, or None."""
        key = (module, name)
        fn = self._bound.get(key)
        if fn is None:
            exp = self.export_for(module, name)
            if exp is None:
                return None
            fn = bind(exp, self.holder, variadic=key in VARIADIC)
            self._bound[key] = fn
            if self.log_mode & 1:
                self.log.info("app_lua: resolved KSR.%s", exp.qualified_name)
        return fn

    def exports(self) -> list[KemiExport]:
        """Every function a script can call through KSR (registry plus engine built-ins)."""
        out = list(self.registry)
        out.extend(e for k, e in BUILTINS.items() if self.registry.lookup(*k) is None)
        return sorted(out, key=lambda e: (e.module, e.name))

    def _unknown(self, what: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            self.log.error("app_lua: %s is not a known KEMI function or module "
                           "(is its module loaded?)", what)

    # ---- KSR __index (called from Lua) ------------------------------------------------------
    def ksr_top(self, key: Any) -> tuple[bool, Callable[..., Any] | None]:
        """``KSR.<key>``: (True, None) for a module sub-table, else (False, core function)."""
        if type(key) is str:
            if self.has_module(key):
                return True, None
            fn = self.function("", key)
            if fn is not None:
                return False, fn
        self._unknown(f"KSR.{key}")
        return False, None

    def ksr_member(self, module: str, key: Any) -> Callable[..., Any] | None:
        """``KSR.<module>.<key>``."""
        fn = self.function(module, key) if type(key) is str else None
        if fn is None:
            self._unknown(f"KSR.{module}.{key}")
        return fn

    # ---- sr __index (the legacy API) ------------------------------------------------------
    def sr_top(self, key: Any) -> tuple[bool, Callable[..., Any] | None]:
        if type(key) is str:
            if key == "log" and self.registry.lookup("", "log") is None:
                return False, self._sr_log
            alias = SR_TOP_ALIASES.get(key)
            if alias is not None:
                fn = self.function(*alias)
                if fn is not None:
                    return False, fn
            elif self.has_module(key):
                return True, None
            else:
                fn = self.function("", key)
                if fn is not None:
                    return False, fn
        self._unknown(f"sr.{key}")
        return False, None

    def sr_member(self, module: str, key: Any) -> Callable[..., Any] | None:
        fn = None
        if type(key) is str:
            target = SR_MEMBER_ALIASES.get((module, key), (module, key))
            fn = self.function(*target)
        if fn is None:
            self._unknown(f"sr.{module}.{key}")
        return fn

    def _sr_log(self, level: Any = None, msg: Any = None, *rest: Any) -> None:
        """sr.log(level, msg) of the old API, sent to the core's log function of that level."""
        name = SR_LOG_LEVELS.get(level) if type(level) is str else None
        if name is None or rest or msg is None:
            raise LuaArgError(f"sr.log(str level, str msg): level is one of "
                              f"{', '.join(sorted(SR_LOG_LEVELS))}; got ({level!r}, {msg!r})")
        fn = self.function("", name)
        if fn is None:
            self._unknown(f"KSR.{name}")
            raise LuaArgError(f"sr.log: no core log function KSR.{name} is exported")
        fn(msg)
