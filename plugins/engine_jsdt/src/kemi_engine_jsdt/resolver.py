"""Resolves ``KSR.<name>`` and ``KSR.<module>.<name>`` for the JS prelude, once per name.

A bound function reaches JS through a short-lived global (``__ksr_fn``) that the prelude
takes and deletes at once: QuickJS's Python bindings have no other way to hand a new Python
callable to JS from inside a call.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import ExportTable, KemiRegistry
from kemi_engine_jsdt.binding import Holder, bind

MODULE, FUNCTION, UNKNOWN = 1, 2, 0


class Resolver(ExportTable):
    """Looks names up in the registry and binds each export once per engine."""

    def __init__(self, registry: KemiRegistry, holder: Holder, log: logging.Logger,
                 log_resolved: bool = False) -> None:
        super().__init__(registry, lambda exp: bind(exp, holder), log, "app_jsdt", log_resolved)
        self._context: Any = None

    def attach(self, context: Any) -> None:
        """The QuickJS context the bound functions are handed to."""
        self._context = context

    def _hand(self, module: str, name: str) -> int:
        fn = self.function(module, name)
        if fn is None:  # JS then says "not a function" with the line
            self.unknown(f"KSR.{module}.{name}" if module else f"KSR.{name}")
            return UNKNOWN
        self._context.add_callable("__ksr_fn", fn)
        return FUNCTION

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
