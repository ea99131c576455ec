"""Resolves ``KSR.<name>`` and ``KSR.<module>.<name>`` for the JS prelude, once per name.

A bound function reaches JS through a short-lived global (``__ksr_fn``) that the prelude
takes and deletes at once: QuickJS's Python bindings have no other way to hand a new Python
callable to JS from inside a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kemi_core.api import KemiExport, KemiRegistry, flow_exports
from kemi_engine_jsdt.binding import Holder, bind

#: KSR.x.exit/drop even when the registry lacks the core's exports (engine unit tests).
BUILTINS: dict[tuple[str, str], KemiExport] = {(e.module, e.name): e for e in flow_exports()}
_BUILTIN_MODULES = frozenset(m for m, _ in BUILTINS)

MODULE, FUNCTION, UNKNOWN = 1, 2, 0


class Resolver:
    """Looks names up in the registry and binds each export once per engine."""

    def __init__(self, registry: KemiRegistry, holder: Holder, log: logging.Logger,
                 log_resolved: bool = False) -> None:
        self.registry = registry
        self.holder = holder
        self.log = log
        self.log_resolved = log_resolved
        self._context: Any = None
        self._bound: dict[tuple[str, str], Callable[..., Any]] = {}
        self._reported: set[str] = set()

    def attach(self, context: Any) -> None:
        """The QuickJS context the bound functions are handed to."""
        self._context = context

    def export_for(self, module: str, name: str) -> KemiExport | None:
        exp = self.registry.lookup(module, name)
        return exp if exp is not None else BUILTINS.get((module, name))

    def has_module(self, module: str) -> bool:
        return module != "" and (self.registry.has_module(module) or module in _BUILTIN_MODULES)

    def _hand(self, module: str, name: str) -> int:
        key = (module, name)
        fn = self._bound.get(key)
        if fn is None:
            exp = self.export_for(module, name)
            if exp is None:
                self._unknown(f"KSR.{module}.{name}" if module else f"KSR.{name}")
                return UNKNOWN
            fn = self._bound[key] = bind(exp, self.holder)
            if self.log_resolved:
                self.log.info("app_jsdt: resolved KSR.%s", exp.qualified_name)
        self._context.add_callable("__ksr_fn", fn)
        return FUNCTION

    def _unknown(self, what: str) -> None:
        if what not in self._reported:  # JS then says "not a function" with the line
            self._reported.add(what)
            self.log.error("app_jsdt: %s is not a known KEMI function or module "
                           "(is its module loaded?)", what)

    # ---- called from the prelude ------------------------------------------------------------
    def top(self, key: Any) -> int:
        """``KSR.<key>``: MODULE for a module object, FUNCTION (handed over) or UNKNOWN."""
        if type(key) is not str:
            return UNKNOWN
        if self.has_module(key):
            return MODULE
        return self._hand("", key)

    def member(self, module: Any, key: Any) -> int:
        """``KSR.<module>.<key>``: FUNCTION (handed over) or UNKNOWN."""
        if type(module) is not str or type(key) is not str:
            return UNKNOWN
        return self._hand(module, key)

    def exports(self) -> list[KemiExport]:
        """Every function a script can call through KSR (registry plus engine built-ins)."""
        out = list(self.registry)
        out.extend(e for k, e in BUILTINS.items() if self.registry.lookup(*k) is None)
        return sorted(out, key=lambda e: (e.module, e.name))
