"""counters.so: script counters declared with ``script_counter``, changed with cnt_inc/cnt_add/
cnt_reset (KSR.counters.inc/add/reset) and read with the cnt.* RPCs.

The values live in the server's shared store (one table), so an increment in any worker is seen
by every other worker and by the RPCs the main process answers, as Kamailio's shared-memory
counters are. Only the counters this module declares are listed (the core's statistics are the
``stats.*`` RPCs).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import attrs

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    RpcFault,
    SharedTable,
    export,
    hookimpl,
    shared_store,
)

log = logging.getLogger("kemi.counters")

MODULE = "counters"
DEFAULT_DESC = "custom script counter."
_DECL = re.compile(r"\s*(?:([A-Za-z0-9_]+)\.)?([A-Za-z0-9_]+)(?:[ :]\s*(.*))?\s*$")


@attrs.frozen
class Counter:
    group: str
    name: str
    doc: str

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


class _State:
    core: Core | None = None
    group = "script"
    counters: dict[str, Counter] = {}
    table: SharedTable | None = None


_state = _State()


def parse_declaration(text: str, default_group: str) -> Counter:
    """``[group.]name[( |:)description]`` -> Counter."""
    m = _DECL.match(text)
    if m is None:
        raise ModuleError(f"counters: bad script_counter declaration {text!r}")
    group, name, doc = m.groups()
    return Counter(group or default_group, name, (doc or "").strip() or DEFAULT_DESC)


def exports() -> list[KemiExport]:
    return [export(MODULE, "inc", cnt_inc, "s"), export(MODULE, "add", cnt_add, "si"),
            export(MODULE, "reset", cnt_reset, "s")]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "script_counter", str, multi=True,
                       doc="declare a counter: [group.]name[( |:)description]")
    core.declare_param(MODULE, "script_cnt_grp_name", str, "script",
                       doc="group of counters declared without one")
    core.add_cfg_function(CfgFunction(MODULE, "cnt_inc", cnt_inc, 1, 1, (), cnt_inc.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "cnt_add", cnt_add, 2, 2, (1,), cnt_add.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "cnt_reset", cnt_reset, 1, 1, (),
                                      cnt_reset.__doc__ or ""))
    for name, fn in RPCS.items():
        core.add_rpc(name, fn, fn.__doc__ or "")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    _state.core = core
    _state.group = str(core.modparam(MODULE, "script_cnt_grp_name"))
    counters: dict[str, Counter] = {}
    for decl in core.modparam(MODULE, "script_counter"):
        c = parse_declaration(str(decl), _state.group)
        if c.key in counters:
            raise ModuleError(f"counters: counter {c.key} declared twice")
        counters[c.key] = c
    _state.counters = counters
    _state.table = shared_store(core).table("counters:values")


def _counter(name: str) -> Counter | None:
    key = name if "." in name else f"{_state.group}.{name}"
    c = _state.counters.get(key)
    if c is None:
        log.error("counters: %s is not declared (modparam script_counter)", key)
    return c


def _table() -> SharedTable:
    if _state.table is None:
        raise ModuleError("counters is not initialised")
    return _state.table


def cnt_inc(ctx: MsgContext, name: str) -> int:
    """Add 1 to the counter ``[group.]name``."""
    return cnt_add(ctx, name, 1)


def cnt_add(ctx: MsgContext, name: str, value: int) -> int:
    """Add ``value`` to the counter ``[group.]name``."""
    c = _counter(name)
    if c is None:
        return -1
    _table().incr(c.key, value)
    return 1


def cnt_reset(ctx: MsgContext, name: str) -> int:
    """Set the counter ``[group.]name`` to 0."""
    c = _counter(name)
    if c is None:
        return -1
    _table().put(c.key, 0)
    return 1


# ---- RPC ----------------------------------------------------------------------------------
def _rpc_counter(params: list[Any]) -> Counter:
    if len(params) < 2:
        raise RpcFault("group and counter name needed", 400)
    c = _state.counters.get(f"{params[0]}.{params[1]}")
    if c is None:
        raise RpcFault(f"non-existent counter {params[0]}.{params[1]}\n", 400)
    return c


def _value(c: Counter) -> int:
    return int(_table().get(c.key, 0))


def rpc_get(core: Core, params: list[Any]) -> int:
    """cnt.get group name: the counter's value."""
    return _value(_rpc_counter(params))


def rpc_reset(core: Core, params: list[Any]) -> None:
    """cnt.reset group name: set the counter to 0."""
    _table().put(_rpc_counter(params).key, 0)


def rpc_help(core: Core, params: list[Any]) -> str:
    """cnt.help group name: the counter's description."""
    return _rpc_counter(params).doc


def rpc_groups(core: Core, params: list[Any]) -> list[str]:
    """cnt.list_groups: every counter group."""
    return sorted({c.group for c in _state.counters.values()})


def rpc_vars(core: Core, params: list[Any]) -> list[str]:
    """cnt.list_vars group: the counter names of a group."""
    group = str(params[0]) if params else ""
    return [c.name for c in _state.counters.values() if c.group == group]


def rpc_get_vars(core: Core, params: list[Any]) -> dict[str, int]:
    """cnt.get_vars group: name -> value for the counters of a group."""
    group = str(params[0]) if params else ""
    return {c.name: _value(c) for c in _state.counters.values() if c.group == group}


RPCS = {"cnt.get": rpc_get, "cnt.get_raw": rpc_get, "cnt.reset": rpc_reset, "cnt.help": rpc_help,
        "cnt.list_groups": rpc_groups, "cnt.grps_list": rpc_groups, "cnt.list_vars": rpc_vars,
        "cnt.var_list": rpc_vars, "cnt.get_vars": rpc_get_vars, "cnt.grp_get_all": rpc_get_vars}
