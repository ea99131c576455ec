"""cfg_rpc.so: read and change configuration variables at run time over RPC (cfg.get, cfg.seti,
cfg.sets, cfg.set_delayed_* + cfg.commit, cfg.list, cfg.help ...).

The variables are the custom ones kamailio.cfg declares (``pstn.gw_ip = "" desc "PSTN GW"``)
and ``core.debug``. Values live in the server's shared store: a change made over RPC is seen by
every worker at once; a new ``core.debug`` sets each worker's log level at its next timer tick.
Other modules read a variable with ``core.services["cfg"].get(group, name)`` (provided as "cfg").
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from kemi_core.api import Core, RpcFault, SharedTable, hookimpl, kamailio_level, shared_store

log = logging.getLogger("kemi.cfg_rpc")

MODULE = "cfg_rpc"
_UNKNOWN = "Failed to get the variable"


@attrs.frozen
class CfgVar:
    group: str
    name: str
    kind: type  # int or str
    default: Any
    doc: str = ""

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"


class CfgVars:
    """The variables, their current values (shared store) and the delayed changes (main
    process only: committed with cfg.commit)."""

    def __init__(self, table: SharedTable, variables: list[CfgVar]) -> None:
        self.table = table
        self.vars = {v.key: v for v in variables}
        self.pending: dict[str, Any] = {}

    def var(self, group: str, name: str) -> CfgVar:
        v = self.vars.get(f"{group}.{name}")
        if v is None:
            raise RpcFault(_UNKNOWN, 400)
        return v

    def get(self, group: str, name: str) -> Any:
        """The current value of ``group.name`` (KeyError-free: RpcFault when unknown)."""
        v = self.var(group, name)
        return self.table.get(v.key, v.default)

    def check(self, v: CfgVar, value: Any, kind: type | None) -> Any:
        want = kind or v.kind
        if want is not v.kind:
            raise RpcFault(f"Invalid parameter type: {v.key} is "
                           f"{'an integer' if v.kind is int else 'a string'}", 400)
        if v.kind is int:
            try:
                return int(value)
            except (TypeError, ValueError):
                raise RpcFault(f"Invalid integer value {value!r}", 400)
        return str(value)

    def set(self, group: str, name: str, value: Any, kind: type | None = None) -> None:
        v = self.var(group, name)
        self.table.put(v.key, self.check(v, value, kind))

    def set_delayed(self, group: str, name: str, value: Any, kind: type | None = None) -> None:
        v = self.var(group, name)
        self.pending[v.key] = self.check(v, value, kind)

    def commit(self) -> None:
        for key, value in self.pending.items():
            self.table.put(key, value)
        self.pending.clear()


_state: dict[str, CfgVars] = {}


def cfg_vars() -> CfgVars:
    vars_ = _state.get("vars")
    if vars_ is None:
        raise RpcFault("cfg_rpc is not initialised", 500)
    return vars_


@hookimpl
def mod_register(core: Core) -> None:
    for name, fn in RPCS.items():
        core.add_rpc(name, fn, fn.__doc__ or "")


#: How often each process looks for a core.debug set by cfg.seti (seconds).
FOLLOW_DEBUG_EVERY = 1.0


@hookimpl
def mod_init(core: Core) -> None:
    variables = [CfgVar("core", "debug", int, int(core.config.debug), "debug level")]
    descriptions = core.config.cfg_var_descriptions
    for key, value in core.config.extra.items():
        group, dot, name = key.partition(".")
        # custom variables are kamailio.cfg's dotted settings (group.name = value)
        if dot and group and name and isinstance(value, (int, str)) and not isinstance(value, bool):
            variables.append(CfgVar(group, name, type(value), value, descriptions.get(key, "")))
    table = shared_store(core).table("cfg_rpc:values")
    vars_ = CfgVars(table, variables)
    _state["vars"] = vars_
    core.provide("cfg", vars_)
    applied = {"debug": int(core.config.debug)}

    def follow_debug() -> None:
        level = int(table.get("core.debug", applied["debug"]))
        if level != applied["debug"]:
            applied["debug"] = level
            logging.getLogger("kemi").setLevel(kamailio_level(level))
    # each worker takes a new level within a second, without waking more often when idle
    core.clock.call_every(FOLLOW_DEBUG_EVERY, follow_debug)


# ---- RPC commands -----------------------------------------------------------------------
def _args(params: list[Any], n: int) -> list[Any]:
    if len(params) < n:
        raise RpcFault("Invalid parameters", 400)
    return params[:n]


def rpc_get(core: Core, params: list[Any]) -> Any:
    """cfg.get group var: the variable's value."""
    group, name = _args(params, 2)
    return cfg_vars().get(str(group), str(name))


def rpc_set(core: Core, params: list[Any]) -> None:
    """cfg.set group var value: set the variable now (integer or string)."""
    group, name, value = _args(params, 3)
    cfg_vars().set(str(group), str(name), value)


def rpc_seti(core: Core, params: list[Any]) -> None:
    """cfg.seti group var int: set an integer variable now."""
    group, name, value = _args(params, 3)
    cfg_vars().set(str(group), str(name), value, int)


def rpc_sets(core: Core, params: list[Any]) -> None:
    """cfg.sets group var string: set a string variable now."""
    group, name, value = _args(params, 3)
    cfg_vars().set(str(group), str(name), value, str)


def rpc_set_delayed(core: Core, params: list[Any]) -> None:
    """cfg.set_delayed group var value: prepare a change, applied by cfg.commit."""
    group, name, value = _args(params, 3)
    cfg_vars().set_delayed(str(group), str(name), value)


def rpc_set_delayed_int(core: Core, params: list[Any]) -> None:
    """cfg.set_delayed_int group var int: prepare an integer change (cfg.commit applies it)."""
    group, name, value = _args(params, 3)
    cfg_vars().set_delayed(str(group), str(name), value, int)


def rpc_set_delayed_string(core: Core, params: list[Any]) -> None:
    """cfg.set_delayed_string group var string: prepare a string change."""
    group, name, value = _args(params, 3)
    cfg_vars().set_delayed(str(group), str(name), value, str)


def rpc_commit(core: Core, params: list[Any]) -> None:
    """cfg.commit: apply the prepared changes."""
    cfg_vars().commit()


def rpc_rollback(core: Core, params: list[Any]) -> None:
    """cfg.rollback: drop the prepared changes."""
    cfg_vars().pending.clear()


def rpc_diff(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    """cfg.diff: the prepared changes, with the values they replace."""
    vars_ = cfg_vars()
    out = []
    for key, new in vars_.pending.items():
        v = vars_.vars[key]
        out.append({"group name": v.group, "variable name": v.name,
                    "old value": vars_.table.get(key, v.default), "new value": new})
    return out


def rpc_list(core: Core, params: list[Any]) -> list[str]:
    """cfg.list [group]: the variables as "group: name"."""
    group = str(params[0]) if params else None
    return [f"{v.group}: {v.name}" for v in cfg_vars().vars.values()
            if group is None or v.group == group]


def rpc_help(core: Core, params: list[Any]) -> str:
    """cfg.help group var: the variable's type (over JSON-RPC Kamailio answers only that)."""
    group, name = _args(params, 2)
    v = cfg_vars().var(str(group), str(name))
    return "(parameter type is integer)" if v.kind is int else "(parameter type is string)"


def rpc_reset(core: Core, params: list[Any]) -> None:
    """cfg.reset group: every variable of the group back to its value in kamailio.cfg."""
    group = str(_args(params, 1)[0])
    vars_ = cfg_vars()
    for v in vars_.vars.values():
        if v.group == group:
            vars_.table.put(v.key, v.default)


RPCS = {"cfg.get": rpc_get, "cfg.set": rpc_set, "cfg.seti": rpc_seti, "cfg.sets": rpc_sets,
        "cfg.set_now_int": rpc_seti, "cfg.set_now_string": rpc_sets,
        "cfg.set_delayed": rpc_set_delayed, "cfg.set_delayed_int": rpc_set_delayed_int,
        "cfg.set_delayed_string": rpc_set_delayed_string, "cfg.commit": rpc_commit,
        "cfg.rollback": rpc_rollback, "cfg.diff": rpc_diff, "cfg.list": rpc_list,
        "cfg.help": rpc_help, "cfg.reset": rpc_reset}
