"""Name resolution behind the ``KSR`` and ``sr`` tables' ``__index`` (called once per name).

``KSR.<module>.<function>`` and ``KSR.<function>`` (core, module "") come from the KEMI
registry (kemi's shared ExportTable; ``KSR.x.exit`` / ``KSR.x.drop`` are the engine's own when
no module exports them).

``sr`` is the Lua API of Kamailio before KEMI (the seed's example calls ``sr.maxfwd.process_maxfwd``
and ``sr.pv.sets``). kemi maps it onto the same registry: ``sr.<module>.<fn>`` is
``KSR.<module>.<fn>`` and ``sr.<fn>`` is ``KSR.<fn>``, except for the few names in the alias
tables below, which had other names or shapes in the old API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from kemi_core.api import ExportTable, KemiRegistry, script_exit
from kemi_engine_lua.binding import CtxHolder, LuaArgError, bind

#: sr.<name> (top level) -> KSR (module, name) where the old API differs.
SR_TOP_ALIASES: dict[str, tuple[str, str]] = {
    "modf": ("x", "modf"),  # sr.modf("fn", ...) ran a cfg function; KEMI has it under x
}
#: sr.<module>.<name> -> KSR (module, name) where the old API differs. The calls the seed makes
#: (sr.maxfwd.process_maxfwd, sr.pv.sets/seti/get/unset, sr.sl.send_reply, sr.hdr.*) kept their
#: names in KEMI; add an entry here when an old member name is found that did not.
SR_MEMBER_ALIASES: dict[tuple[str, str], tuple[str, str]] = {}
#: sr.log(level, msg): level words of the old API -> core log function names.
#: Modules whose calls may replace the message (textops re-parses it at once) or edit a reply's
#: CSeq: after each call the prelude reads the message facts again (see ``facts``).
EDITING_MODULES = frozenset({"textops", "textopsx", "hdr"})
EDITING_MEMBERS = frozenset({("x", "modf")})  # runs a cfg function by name (textops' too)
SR_LOG_LEVELS = {
    "dbg": "dbg", "debug": "dbg", "info": "info", "notice": "notice", "warn": "warn",
    "warning": "warn", "err": "err", "error": "err", "crit": "crit", "alert": "crit",
}


class Resolver(ExportTable):
    """Looks names up in the registry and builds (once) the callables Lua caches."""

    def __init__(self, registry: KemiRegistry, holder: CtxHolder, log: logging.Logger,
                 log_mode: int = 0) -> None:
        super().__init__(registry, lambda exp: bind(exp, holder), log, "app_lua",
                         log_resolved=bool(log_mode & 1))
        self.holder = holder

    # ---- what the prelude answers in Lua ------------------------------------------------
    def facts(self) -> tuple[bool | None, str | None, str | None]:
        """The running route's message: (is_request, method, method.upper()); the prelude
        reads them once per route run for the exports marked with ``message_fact``. None for
        what cannot be read: the prelude then calls the export, which fails as it would."""
        try:
            msg = self.holder.ctx.msg
            is_request = msg.is_request
        except Exception:  # noqa: BLE001 - the export itself reports it
            return None, None, None
        try:
            method = msg.method
            return is_request, method, method.upper()
        except Exception:  # noqa: BLE001 - a reply's unreadable CSeq: the export reports it
            return is_request, None, None

    def _fact(self, module: str, name: str) -> tuple[Any, ...]:
        """How the prelude runs KSR.<module>.<name> in Lua (after the callable): ("exit",) for
        the core's KSR.x.exit, the export's ``message_fact`` (method_in: a function giving
        the names of a letter string, space-separated, or None), ("edits",) for a call after
        which the message facts are read again; () for a plain call."""
        if module in EDITING_MODULES or (module, name) in EDITING_MEMBERS:
            return ("edits",)
        exp = self.export_for(module, name)
        if exp is None:
            return ()
        if exp.func is script_exit:
            return ("exit",) if (module, name) == ("x", "exit") else ()
        fact = getattr(exp.func, "message_fact", None)
        if not isinstance(fact, tuple) or not fact:
            return ()
        if fact[0] == "method_in":
            return ("method_in", partial(_method_names, fact[1]))
        return fact

    # ---- KSR __index (called from Lua) ------------------------------------------------------
    def ksr_top(self, key: Any) -> tuple[Any, ...]:
        """``KSR.<key>``: (True, None) for a module sub-table, else (False, core function,
        *how the prelude runs it*: see ``_fact``)."""
        if type(key) is str:
            if self.has_module(key):
                return True, None
            fn = self.function("", key)
            if fn is not None:
                return (False, fn, *self._fact("", key))
        self.unknown(f"KSR.{key}")
        return False, None

    def ksr_member(self, module: str, key: Any) -> Any:
        """``KSR.<module>.<key>``: the callable, then how the prelude runs it (``_fact``: the
        core's own KSR.x.exit as a Lua error, a message fact in Lua)."""
        fn = self.function(module, key) if type(key) is str else None
        if fn is None:
            self.unknown(f"KSR.{module}.{key}")
            return fn
        return (fn, *self._fact(module, key))

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
        self.unknown(f"sr.{key}")
        return False, None

    def sr_member(self, module: str, key: Any) -> Any:
        fn = None
        if type(key) is str:
            target = SR_MEMBER_ALIASES.get((module, key), (module, key))
            fn = self.function(*target)
            if fn is not None and (target[0] in EDITING_MODULES or target in EDITING_MEMBERS):
                return fn, "edits"
        if fn is None:
            self.unknown(f"sr.{module}.{key}")
        return fn

    def _sr_log(self, level: Any = None, msg: Any = None, *rest: Any) -> None:
        """sr.log(level, msg) of the old API, sent to the core's log function of that level."""
        name = SR_LOG_LEVELS.get(level) if type(level) is str else None
        if name is None or rest or msg is None:
            raise LuaArgError(f"sr.log(str level, str msg): level is one of "
                              f"{', '.join(sorted(SR_LOG_LEVELS))}; got ({level!r}, {msg!r})")
        fn = self.function("", name)
        if fn is None:
            self.unknown(f"KSR.{name}")
            raise LuaArgError(f"sr.log: no core log function KSR.{name} is exported")
        fn(msg)


def _method_names(letters: Mapping[str, str], text: Any) -> str | None:
    """The method names of is_method_in's letter string ``text``, space-separated; None when
    it is not a string of known letters (the export logs and answers those)."""
    if type(text) is not str or not all(c in letters for c in text):
        return None
    return " ".join(letters[c] for c in text)
