"""kemi's kex module (``loadmodule "kex.so"``, ``KSR.kex.*``): Kamailio core extensions.

KEMI exports, as in Kamailio 5.6: ``setdebug(level)`` and ``resetdebug()`` (the flag, $du and
myself functions are KSR core functions there and here). kamailio.cfg gets kex's native
functions (setsflag, setbflag, setdsturi, pv_printf, is_myself, ...). The statistics RPCs
(``stats.*``) that kex offers in Kamailio are the core's in kemi (kemi_core.stats).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import CfgFunction, Core, KemiExport, export, hookimpl
from kemi_kex import cfgfuncs, debug

MODULE = "kex"

EXPORTS: list[tuple[str, Callable[..., Any], str]] = [
    ("setdebug", debug.setdebug, "i"),
    ("resetdebug", debug.resetdebug, ""),
]

#: (name, function, min args, max args, int positions)
CFG: list[tuple[str, Callable[..., int], int, int, tuple[int, ...]]] = [
    ("setsflag", cfgfuncs.setsflag, 1, 1, (0,)),
    ("issflagset", cfgfuncs.issflagset, 1, 1, (0,)),
    ("resetsflag", cfgfuncs.resetsflag, 1, 1, (0,)),
    ("setbflag", cfgfuncs.setbflag, 1, 2, (0, 1)),
    ("isbflagset", cfgfuncs.isbflagset, 1, 2, (0, 1)),
    ("resetbflag", cfgfuncs.resetbflag, 1, 2, (0, 1)),
    ("setdsturi", cfgfuncs.setdsturi, 1, 1, ()),
    ("resetdsturi", cfgfuncs.resetdsturi, 0, 0, ()),
    ("isdsturiset", cfgfuncs.isdsturiset, 0, 0, ()),
    ("pv_printf", cfgfuncs.pv_printf, 2, 2, ()),
    ("avp_printf", cfgfuncs.pv_printf, 2, 2, ()),
    ("is_myself", cfgfuncs.is_myself, 1, 1, ()),
    ("setdebug", debug.setdebug, 1, 1, (0,)),
    ("resetdebug", debug.resetdebug, 0, 0, ()),
]

def rpc_aliases_list(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    """The aliases (given and automatic) with Kamailio's fields; ``*``: any."""
    return [{"proto": a.proto or "*", "address": a.host, "port": a.port or "*"}
            for a in core.myself.aliases()]


#: The statistics RPCs (stats.*) are the core's own in kemi (kemi_core.stats), on core.counter.
RPCS = [
    ("core.aliases_list", rpc_aliases_list, "the local host aliases"),
]


@hookimpl
def mod_register(core: Core) -> None:
    for name, fn, lo, hi, ints in CFG:
        if name not in core.cfg_functions:  # the core may own a few of these names itself
            core.add_cfg_function(CfgFunction(MODULE, name, fn, lo, hi, ints, fn.__doc__ or ""))
    for name, rpc, doc in RPCS:
        if name not in core.rpc_commands:
            core.add_rpc(name, rpc, doc)
    core.pv.register("stat", _stat, takes_arg=True, parse_arg=str.strip,
                     doc="value of a statistic: $stat(name) or $stat(group:name)")


def _stat(ctx: Any, name: str) -> int | None:
    """A statistic by name (any group) or group:name; $null when there is none."""
    group, colon, short = name.partition(":")
    found = ctx.core.counters.select(group=group, name=short) if colon else \
        ctx.core.counters.select(name=name)
    return int(found[0].value) if found else None


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return [export(MODULE, name, fn, params) for name, fn, params in EXPORTS]
