"""$var, $shv, $avp, evaluation and the var <-> xavp copies of KSR.pvx."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext, set_pv
from kemi_pv.xavp import ROOT_VALUE, XAVP, _first

log = logging.getLogger("kemi.pv")

Value = str | int | None


# ---- $var: per process, core.script_vars ---------------------------------------------------
def var_set(ctx: MsgContext, name: str, value: Value) -> int:
    ctx.core.script_vars[name] = value
    return 1


def var_get(ctx: MsgContext, name: str) -> Value:
    """The value of $var(name); None when it was never set."""
    return ctx.core.script_vars.get(name)  # type: ignore[no-any-return]


# ---- $shv: core.shared_vars ----------------------------------------------------------------
def shv_set(ctx: MsgContext, name: str, value: Value) -> int:
    ctx.core.shared_vars[name] = value
    return 1


def shv_get(ctx: MsgContext, name: str) -> Value:
    """The value of $shv(name); None when it was never set."""
    value = ctx.core.shared_vars.get(name)
    return value if value is None or isinstance(value, str | int) else None


# ---- $avp: ctx.avps, newest first -----------------------------------------------------------
def _avp(name: str) -> str:
    name = name.strip()
    return name[2:] if len(name) > 2 and name[1] == ":" and name[0] in "si" else name


def avp_set(ctx: MsgContext, name: str, value: Value) -> int:
    ctx.avps.setdefault(_avp(name), []).insert(0, value)
    return 1


def avp_get(ctx: MsgContext, name: str) -> Value:
    values = ctx.avps.get(_avp(name))
    return values[0] if values else None  # type: ignore[no-any-return]


def avp_rm(ctx: MsgContext, name: str) -> int:
    return 1 if ctx.avps.pop(_avp(name), None) else -1


def avp_is_null(ctx: MsgContext, name: str) -> int:
    return 1 if not ctx.avps.get(_avp(name)) else -1


# ---- evaluation -----------------------------------------------------------------------------
def evalx(ctx: MsgContext, dst: str, fmt: str) -> int:
    """Evaluate ``fmt`` twice (values may hold variables themselves) into variable ``dst``."""
    try:
        once = ctx.core.pv.format(fmt)(ctx)
        twice = ctx.core.pv.compile_format(once)(ctx) if "$" in once else once
        set_pv(ctx, dst, twice)
    except ValueError as exc:
        log.error("evalx(%r, %r): %s", dst, fmt, exc)
        return -1
    return 1


def assign(ctx: MsgContext, spec: str, value: Value) -> int:
    try:
        set_pv(ctx, spec, value)
    except ValueError as exc:
        log.error("cannot assign %s: %s", spec, exc)
        return -1
    return 1


# ---- copies between $var and $xavp -----------------------------------------------------------
def pv_var_to_xavp(ctx: MsgContext, varname: str, xname: str) -> int:
    """Copy $var(varname) (every $var with ``*``) into a fresh $xavp(xname) item."""
    svars = ctx.core.script_vars
    if varname == "*":
        item = {k: v for k, v in svars.items() if v is not None}
    elif varname in svars:
        item = {varname: svars[varname]}
    else:
        return -1
    XAVP.store(ctx).pop(xname, None)  # "if the xavp exists it is reset first"
    XAVP.push(ctx, xname, item)
    return 1


def pv_xavp_to_var(ctx: MsgContext, xname: str) -> int:
    """Copy each field of every $xavp(xname) item into $var(field) (newest item wins)."""
    items = XAVP.items(ctx, xname)
    if not items:
        return -1
    for item in reversed(items):
        for field, value in item.items():
            if field != ROOT_VALUE:
                ctx.core.script_vars[field] = _first(value)
    return 1


def xavp_params_implode(ctx: MsgContext, sxname: str, svname: str) -> int:
    """Serialize the fields of $xavp(sxname) as ``a=b;c=d;`` into variable ``svname``."""
    text = XAVP.params_text(ctx, sxname)
    return -1 if text is None else assign(ctx, svname, text)
