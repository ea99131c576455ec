"""debugger.so: ``cfgtrace`` logs every KEMI call with its arguments, result and script place.

With ``modparam("debugger", "cfgtrace", 1)`` every export in the registry is wrapped at
mod_init, before the engines bind them, so tracing costs nothing when it is off. The script
place comes from the engine when it can tell (``engine.current_location()``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import attrs

from kemi_core.api import Core, KemiExport, MsgContext, hookimpl, kamailio_level

log = logging.getLogger("kemi.cfgtrace")

MODULE = "debugger"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "cfgtrace", int, 0, doc="1: log every KEMI call")
    core.declare_param(MODULE, "log_level", int, 3, doc="Kamailio level of the trace lines (3 = debug)")
    core.declare_param(MODULE, "log_prefix", str, "*** cfgtrace:")
    core.declare_param(MODULE, "log_facility", str, "", doc="accepted for compatibility")
    core.declare_param(MODULE, "breakpoint", int, 0, doc="accepted; interactive stepping is not offered")
    core.declare_param(MODULE, "mod_level_mode", int, 0, doc="accepted for compatibility")
    core.declare_param(MODULE, "mod_hash_size", int, 0, doc="accepted for compatibility")
    core.declare_param(MODULE, "mod_level", str, multi=True, doc="accepted for compatibility")


@hookimpl
def mod_init(core: Core) -> None:
    if not core.modparam(MODULE, "cfgtrace"):
        return
    level = kamailio_level(int(core.modparam(MODULE, "log_level")))
    prefix = str(core.modparam(MODULE, "log_prefix"))
    core.registry.wrap_all(lambda exp: traced(exp, core, level, prefix))


def traced(exp: KemiExport, core: Core, level: int, prefix: str) -> KemiExport:
    """The same export, logging each call."""
    func: Callable[..., Any] = exp.func
    name = exp.qualified_name

    @functools.wraps(func)
    def trace(ctx: MsgContext, *args: Any) -> Any:
        result = func(ctx, *args)
        if log.isEnabledFor(level):
            where = ""
            locate = getattr(core.engine, "current_location", None)
            if locate is not None:
                where = f" [{locate()}]"
            shown = ", ".join(repr(a) for a in args)
            log.log(level, "%s KSR.%s(%s) = %r%s", prefix, name, shown, result, where)
        return result

    return attrs.evolve(exp, func=trace)
