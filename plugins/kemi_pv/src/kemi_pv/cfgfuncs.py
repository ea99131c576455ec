"""pv's native kamailio.cfg functions (pv_isset, typeof, xavp_params_explode, pv_evalx ...).

Variable-name parameters arrive as written (``"$var(x)"``); value parameters have their
variables evaluated here, as Kamailio's fixups do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kemi_core.api import CfgFunction, MsgContext, get_pv, set_pv
from kemi_pv import kemi_api, sbranch, variables
from kemi_pv.xavp import XAVP

log = logging.getLogger("kemi.pv")


def _ev(ctx: MsgContext, text: str) -> str:
    if "$" not in text:
        return text
    try:
        return ctx.core.pv.format(text)(ctx)
    except ValueError:
        return text


def _value(ctx: MsgContext, spec: str) -> tuple[bool, str | int | None]:
    try:
        return True, get_pv(ctx, spec)
    except ValueError as exc:
        log.error("%s: %s", spec, exc)
        return False, None


def pv_isset(ctx: MsgContext, pvar: str) -> int:
    """The variable's value is not $null."""
    ok, val = _value(ctx, pvar)
    return 1 if ok and val is not None else -1


def pv_unset(ctx: MsgContext, pvar: str) -> int:
    """Set the variable to $null (delete an AVP/XAVP)."""
    try:
        set_pv(ctx, pvar, None)
    except ValueError as exc:
        log.error("pv_unset(%s): %s", pvar, exc)
        return -1
    return 1


def is_int(ctx: MsgContext, pvar: str) -> int:
    """The variable holds an integer."""
    ok, val = _value(ctx, pvar)
    return 1 if ok and isinstance(val, int) else -1


def typeof(ctx: MsgContext, pvar: str, vtype: str) -> int:
    """The variable's type is ``int``, ``str`` or ``null``."""
    ok, val = _value(ctx, pvar)
    if not ok:
        return -1
    kind = "null" if val is None else "int" if isinstance(val, int) else "str"
    return 1 if vtype.strip().lower().startswith(kind) else -1


def not_empty(ctx: MsgContext, pvar: str) -> int:
    """The variable holds a non-empty string."""
    ok, val = _value(ctx, pvar)
    return 1 if ok and isinstance(val, str) and val != "" else -1


def xavp_params_explode(ctx: MsgContext, sparams: str, xname: str) -> int:
    return XAVP.params_explode(ctx, _ev(ctx, sparams), _ev(ctx, xname))


def xavp_params_implode(ctx: MsgContext, xname: str, pvname: str) -> int:
    return variables.xavp_params_implode(ctx, _ev(ctx, xname), pvname)


def xavp_slist_explode(ctx: MsgContext, slist: str, sep: str, mode: str, xname: str) -> int:
    return kemi_api.xavp_slist_explode(ctx, _ev(ctx, slist), sep, mode, _ev(ctx, xname))


def xavp_child_seti(ctx: MsgContext, rname: str, cname: str, ival: str) -> int:
    text = _ev(ctx, ival)
    try:
        num = int(text, 0)
    except ValueError:
        log.error("xavp_child_seti: %r is not an integer", text)
        return -1
    return XAVP.child_set(ctx, _ev(ctx, rname), _ev(ctx, cname), num)


def xavp_child_sets(ctx: MsgContext, rname: str, cname: str, sval: str) -> int:
    return XAVP.child_set(ctx, _ev(ctx, rname), _ev(ctx, cname), _ev(ctx, sval))


def xavp_rm(ctx: MsgContext, rname: str) -> int:
    return XAVP.rm(ctx, _ev(ctx, rname))


def xavp_child_rm(ctx: MsgContext, rname: str, cname: str) -> int:
    return XAVP.child_rm(ctx, _ev(ctx, rname), _ev(ctx, cname))


def pv_var_to_xavp(ctx: MsgContext, varname: str, xname: str) -> int:
    return variables.pv_var_to_xavp(ctx, _ev(ctx, varname), _ev(ctx, xname))


def pv_xavp_to_var(ctx: MsgContext, xname: str) -> int:
    return variables.pv_xavp_to_var(ctx, _ev(ctx, xname))


def xavp_copy(ctx: MsgContext, src: str, sidx: str, dst: str, didx: str = "") -> int:
    try:
        s_i = int(_ev(ctx, sidx))
        d_i = int(_ev(ctx, didx)) if didx else None
    except ValueError:
        return -1
    if d_i is None:
        return XAVP.copy_item(ctx, _ev(ctx, src), s_i, _ev(ctx, dst))
    return XAVP.copy_item_to(ctx, _ev(ctx, src), s_i, _ev(ctx, dst), d_i)


def cfg_functions() -> list[CfgFunction]:
    m = "pv"
    table: list[tuple[str, Callable[..., int], int, int]] = [
        ("pv_isset", pv_isset, 1, 1), ("pv_unset", pv_unset, 1, 1), ("is_int", is_int, 1, 1),
        ("typeof", typeof, 2, 2), ("not_empty", not_empty, 1, 1),
        ("xavp_params_explode", xavp_params_explode, 2, 2),
        ("xavp_params_implode", xavp_params_implode, 2, 2),
        ("xavp_slist_explode", xavp_slist_explode, 4, 4),
        ("xavp_child_seti", xavp_child_seti, 3, 3), ("xavp_child_sets", xavp_child_sets, 3, 3),
        ("xavp_rm", xavp_rm, 1, 1), ("xavp_child_rm", xavp_child_rm, 2, 2),
        ("sbranch_set_ruri", sbranch.sbranch_set_ruri, 0, 0),
        ("sbranch_append", sbranch.sbranch_append, 0, 0),
        ("sbranch_reset", sbranch.sbranch_reset, 0, 0),
        ("pv_xavp_print", kemi_api.pv_xavp_print, 0, 0),
        ("pv_var_to_xavp", pv_var_to_xavp, 2, 2), ("pv_xavp_to_var", pv_xavp_to_var, 1, 1),
        ("pv_evalx", variables.evalx, 2, 2), ("xavp_copy", xavp_copy, 3, 4),
    ]
    return [CfgFunction(m, name, fn, lo, hi, (), fn.__doc__ or "") for name, fn, lo, hi in table]
