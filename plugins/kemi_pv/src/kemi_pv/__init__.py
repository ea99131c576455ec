"""kemi's pv module (``loadmodule "pv.so"``, ``KSR.pvx.*``).

$var, $shv, $avp, $xavp/$xavi/$xavu helpers, $branch(...), the static branch ($sbranch) and
evalx, with Kamailio 5.6's KEMI names and kinds. The variables themselves ($var, $avp, $xavp ...)
are the core's (kemi_core.pv); this module adds $branch and $sbranch, the shvset/varset
parameters, pv.shvSet / pv.shvGet and the native pv_* functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kemi_core.api import Core, KemiExport, ModuleError, export, hookimpl
from kemi_pv import branch, cfgfuncs, kemi_api, sbranch, variables
from kemi_pv import xavu as xavu_mod

log = logging.getLogger("kemi.pv")

MODULE = "pvx"  # KSR.pvx, while loadmodule names it "pv"
PARAM_MODULE = "pv"

a = kemi_api
EXPORTS: list[tuple[str, Callable[..., Any], str, str]] = [
    ("sbranch_set_ruri", sbranch.sbranch_set_ruri, "", "int"),
    ("sbranch_append", sbranch.sbranch_append, "", "int"),
    ("sbranch_reset", sbranch.sbranch_reset, "", "int"),
    ("var_seti", a.var_seti, "si", "int"),
    ("var_sets", a.var_sets, "ss", "int"),
    ("var_get", a.var_get, "s", "xval"),
    ("shv_seti", a.shv_seti, "si", "int"),
    ("shv_sets", a.shv_sets, "ss", "int"),
    ("shv_get", a.shv_get, "s", "xval"),
    ("pv_var_to_xavp", variables.pv_var_to_xavp, "ss", "int"),
    ("pv_xavp_to_var", variables.pv_xavp_to_var, "s", "int"),
    ("pv_xavp_print", a.pv_xavp_print, "", "int"),
    ("pv_xavu_print", xavu_mod.pv_xavu_print, "", "int"),
    ("pv_xavi_print", a.pv_xavi_print, "", "int"),
    ("xavp_params_explode", a.xavp_params_explode, "ss", "int"),
    ("xavp_params_implode", a.xavp_params_implode, "ss", "int"),
    ("xavu_params_explode", a.xavu_params_explode, "ss", "int"),
    ("xavu_params_implode", a.xavu_params_implode, "ss", "int"),
    ("xavp_slist_explode", a.xavp_slist_explode, "ssss", "int"),
    *((f"xavp_{k}", fn, p, r) for k, (fn, p, r) in a.XAVP_FUNCS.items()),
    *((f"xavi_{k}", fn, p, r) for k, (fn, p, r) in a.XAVI_FUNCS.items()),
    ("xavu_seti", a.xavu_seti, "si", "int"),
    ("xavu_sets", a.xavu_sets, "ss", "int"),
    ("xavu_get", a.xavu_get, "s", "xval"),
    ("xavu_gete", a.xavu_gete, "s", "xval"),
    ("xavu_getw", a.xavu_getw, "s", "xval"),
    ("xavu_rm", xavu_mod.xavu_rm, "s", "int"),
    ("xavu_is_null", xavu_mod.xavu_is_null, "s", "int"),
    ("xavu_child_seti", a.xavu_child_seti, "ssi", "int"),
    ("xavu_child_sets", a.xavu_child_sets, "sss", "int"),
    ("xavu_child_rm", xavu_mod.xavu_child_rm, "ss", "int"),
    ("xavu_child_is_null", xavu_mod.xavu_child_is_null, "ss", "int"),
    ("xavu_child_get", a.xavu_child_get, "ss", "xval"),
    ("xavu_child_gete", a.xavu_child_gete, "ss", "xval"),
    ("xavu_child_getw", a.xavu_child_getw, "ss", "xval"),
    ("evalx", variables.evalx, "ss", "int"),
    ("avp_seti", a.avp_seti, "si", "int"),
    ("avp_sets", a.avp_sets, "ss", "int"),
    ("avp_get", a.avp_get, "s", "xval"),
    ("avp_gete", a.avp_gete, "s", "xval"),
    ("avp_getw", a.avp_getw, "s", "xval"),
    ("avp_rm", a.avp_rm, "s", "int"),
    ("avp_is_null", a.avp_is_null, "s", "int"),
    ("xavp_copy", a.xavp_copy, "sis", "int"),
    ("xavp_copy_dst", a.xavp_copy_dst, "sisi", "int"),
]


def _parse_init(spec: str) -> tuple[str, str | int]:
    """``name=i:1`` / ``name=s:text`` (shvset / varset) -> (name, value)."""
    name, eq, rest = spec.partition("=")
    kind, colon, value = rest.partition(":")
    if not eq or not colon or not name.strip() or kind.strip() not in ("i", "s"):
        raise ModuleError(f"pv: bad initial value {spec!r} (expected name=i:NUMBER or name=s:TEXT)")
    if kind.strip() == "i":
        try:
            return name.strip(), int(value.strip(), 0)
        except ValueError:
            raise ModuleError(f"pv: {spec!r} is not an integer value") from None
    return name.strip(), value


def _rpc_shv_set(core: Core, params: list[Any]) -> str:
    if len(params) != 3 or str(params[1]) not in ("int", "str"):
        raise ValueError("pv.shvSet takes: name int|str value")
    name, kind, value = str(params[0]), str(params[1]), params[2]
    core.shared_vars[name] = int(value) if kind == "int" else str(value)
    return "Ok"


def _rpc_shv_get(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    names = [str(p) for p in params] or [
        k for k, val in core.shared_vars.items() if isinstance(val, str | int)]
    out = []
    for name in names:
        if name not in core.shared_vars:
            raise ValueError(f"shared variable {name!r} not found")
        val = core.shared_vars[name]
        out.append({"name": name, "type": "int" if isinstance(val, int) else "str", "value": val})
    return out


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(PARAM_MODULE, "shvset", str, multi=True, doc="initial $shv: name=i:1 / name=s:x")
    core.declare_param(PARAM_MODULE, "varset", str, multi=True, doc="initial $var: name=i:1 / name=s:x")
    sbranch.register_sbranch_pv(core)
    branch.register_branch_pv(core)
    for fn in cfgfuncs.cfg_functions():
        if fn.name not in core.cfg_functions:
            core.add_cfg_function(fn)
    for name, rpc, doc in (("pv.shvSet", _rpc_shv_set, "set a $shv: name int|str value"),
                           ("pv.shvGet", _rpc_shv_get, "$shv values (all when no name)")):
        if name not in core.rpc_commands:
            core.add_rpc(name, rpc, doc)


@hookimpl
def mod_init(core: Core) -> None:
    for spec in core.modparam(PARAM_MODULE, "shvset"):
        name, value = _parse_init(spec)
        core.shared_vars[name] = value
    for spec in core.modparam(PARAM_MODULE, "varset"):
        name, value = _parse_init(spec)
        core.script_vars[name] = value


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return [export(MODULE, name, fn, params, ret) for name, fn, params, ret in EXPORTS]
