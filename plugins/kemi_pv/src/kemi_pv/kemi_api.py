"""The KSR.pvx functions, one small wrapper each, named and typed as in Kamailio 5.6."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import MsgContext
from kemi_pv import variables as v
from kemi_pv import xavu as u
from kemi_pv.xavp import NULL_TEXT, XAVI, XAVP, XavpFamily, slist_explode

Value = str | int | None


def _e(value: Value) -> Value:  # the "e" getters: "" for $null
    return "" if value is None else value


def _w(value: Value) -> Value:  # the "w" getters: "<null>" for $null
    return NULL_TEXT if value is None else value


# ---- $var / $shv / $avp ----------------------------------------------------------------------
def var_seti(ctx: MsgContext, vname: str, ival: int) -> int:
    """$var(vname) = ival."""
    return v.var_set(ctx, vname, ival)


def var_sets(ctx: MsgContext, vname: str, sval: str) -> int:
    """$var(vname) = sval."""
    return v.var_set(ctx, vname, sval)


def var_get(ctx: MsgContext, vname: str) -> Value:
    """$var(vname), nil when never set."""
    return v.var_get(ctx, vname)


def shv_seti(ctx: MsgContext, vname: str, ival: int) -> int:
    """$shv(vname) = ival."""
    return v.shv_set(ctx, vname, ival)


def shv_sets(ctx: MsgContext, vname: str, sval: str) -> int:
    """$shv(vname) = sval."""
    return v.shv_set(ctx, vname, sval)


def shv_get(ctx: MsgContext, vname: str) -> Value:
    """$shv(vname), nil when never set."""
    return v.shv_get(ctx, vname)


def avp_seti(ctx: MsgContext, xname: str, vn: int) -> int:
    """Add integer value ``vn`` on top of $avp(xname)."""
    return v.avp_set(ctx, xname, vn)


def avp_sets(ctx: MsgContext, xname: str, vs: str) -> int:
    """Add string value ``vs`` on top of $avp(xname)."""
    return v.avp_set(ctx, xname, vs)


def avp_get(ctx: MsgContext, xname: str) -> Value:
    """Newest value of $avp(xname), nil when none."""
    return v.avp_get(ctx, xname)


def avp_gete(ctx: MsgContext, xname: str) -> Value:
    """Newest value of $avp(xname), "" when none."""
    return _e(v.avp_get(ctx, xname))


def avp_getw(ctx: MsgContext, xname: str) -> Value:
    """Newest value of $avp(xname), "<null>" when none."""
    return _w(v.avp_get(ctx, xname))


def avp_rm(ctx: MsgContext, xname: str) -> int:
    """Remove every value of $avp(xname)."""
    return v.avp_rm(ctx, xname)


def avp_is_null(ctx: MsgContext, xname: str) -> int:
    """$avp(xname) has no value: 1, else -1."""
    return v.avp_is_null(ctx, xname)


# ---- $xavp / $xavi (one generator for both families) -----------------------------------------
def _family(fam: XavpFamily) -> dict[str, tuple[Callable[..., Any], str, str]]:
    """name suffix -> (function, params, return kind) for one family."""
    n = fam.label

    def seti(ctx: MsgContext, rname: str, ival: int) -> int:
        return fam.set_value(ctx, rname, ival)

    def sets(ctx: MsgContext, rname: str, sval: str) -> int:
        return fam.set_value(ctx, rname, sval)

    def get(ctx: MsgContext, rname: str) -> Value:
        return fam.get(ctx, rname)

    def gete(ctx: MsgContext, rname: str) -> Value:
        return _e(fam.get(ctx, rname))

    def getw(ctx: MsgContext, rname: str) -> Value:
        return _w(fam.get(ctx, rname))

    def rm(ctx: MsgContext, rname: str) -> int:
        return fam.rm(ctx, rname)

    def is_null(ctx: MsgContext, rname: str) -> int:
        return fam.is_null(ctx, rname)

    def child_seti(ctx: MsgContext, rname: str, cname: str, ival: int) -> int:
        return fam.child_set(ctx, rname, cname, ival)

    def child_sets(ctx: MsgContext, rname: str, cname: str, sval: str) -> int:
        return fam.child_set(ctx, rname, cname, sval)

    def child_rm(ctx: MsgContext, rname: str, cname: str) -> int:
        return fam.child_rm(ctx, rname, cname)

    def child_is_null(ctx: MsgContext, rname: str, cname: str) -> int:
        return fam.child_is_null(ctx, rname, cname)

    def child_get(ctx: MsgContext, rname: str, cname: str) -> Value:
        return fam.child_get(ctx, rname, cname)

    def child_gete(ctx: MsgContext, rname: str, cname: str) -> Value:
        return _e(fam.child_get(ctx, rname, cname))

    def child_getw(ctx: MsgContext, rname: str, cname: str) -> Value:
        return _w(fam.child_get(ctx, rname, cname))

    docs = {
        "seti": f"Add a ${n}(rname) item holding integer ival.",
        "sets": f"Add a ${n}(rname) item holding string sval.",
        "get": f"${n}(rname) (first item), nil when missing.",
        "gete": f"${n}(rname), \"\" when missing.", "getw": f"${n}(rname), \"<null>\" when missing.",
        "rm": f"Remove every ${n}(rname) item.", "is_null": f"${n}(rname) is missing: 1.",
        "child_seti": f"${n}(rname=>cname) = ival.", "child_sets": f"${n}(rname=>cname) = sval.",
        "child_rm": f"Remove ${n}(rname=>cname).", "child_is_null": f"${n}(rname=>cname) is null: 1.",
        "child_get": f"${n}(rname=>cname), nil when missing.",
        "child_gete": f"${n}(rname=>cname), \"\" when missing.",
        "child_getw": f"${n}(rname=>cname), \"<null>\" when missing.",
    }
    table: dict[str, tuple[Callable[..., Any], str, str]] = {
        "seti": (seti, "si", "int"), "sets": (sets, "ss", "int"), "get": (get, "s", "xval"),
        "gete": (gete, "s", "xval"), "getw": (getw, "s", "xval"), "rm": (rm, "s", "int"),
        "is_null": (is_null, "s", "int"), "child_seti": (child_seti, "ssi", "int"),
        "child_sets": (child_sets, "sss", "int"), "child_rm": (child_rm, "ss", "int"),
        "child_is_null": (child_is_null, "ss", "int"), "child_get": (child_get, "ss", "xval"),
        "child_gete": (child_gete, "ss", "xval"), "child_getw": (child_getw, "ss", "xval"),
    }
    for key, (fn, _p, _r) in table.items():
        fn.__doc__ = docs[key]
    return table


XAVP_FUNCS = _family(XAVP)
XAVI_FUNCS = _family(XAVI)


def xavp_params_explode(ctx: MsgContext, sparams: str, sxname: str) -> int:
    """``a=b;c=d`` -> a new $xavp(sxname) item with fields a and c (string values)."""
    return XAVP.params_explode(ctx, sparams, sxname)


def xavp_params_implode(ctx: MsgContext, sxname: str, svname: str) -> int:
    """The fields of $xavp(sxname) as ``a=b;c=d;`` into variable ``svname``."""
    return v.xavp_params_implode(ctx, sxname, svname)


def xavp_slist_explode(ctx: MsgContext, slist: str, sep: str, mode: str, sxname: str) -> int:
    """Tokens of ``slist`` (split at any ``sep`` character) into $xavp(sxname=>v)."""
    return slist_explode(ctx, slist, sep, mode, sxname)


def xavp_copy(ctx: MsgContext, src_name: str, src_idx: int, dst_name: str) -> int:
    """Append a copy of $xavp(src_name[src_idx]) to $xavp(dst_name)."""
    return XAVP.copy_item(ctx, src_name, src_idx, dst_name)


def xavp_copy_dst(ctx: MsgContext, src_name: str, src_idx: int, dst_name: str,
                  dst_idx: int) -> int:
    """Replace $xavp(dst_name[dst_idx]) with a copy of $xavp(src_name[src_idx])."""
    return XAVP.copy_item_to(ctx, src_name, src_idx, dst_name, dst_idx)


def pv_xavp_print(ctx: MsgContext) -> int:
    """Log every $xavp at INFO level."""
    return XAVP.print_all(ctx)


def pv_xavi_print(ctx: MsgContext) -> int:
    """Log every $xavi at INFO level."""
    return XAVI.print_all(ctx)


# ---- $xavu ---------------------------------------------------------------------------------
def xavu_seti(ctx: MsgContext, rname: str, ival: int) -> int:
    """$xavu(rname) = ival."""
    return u.xavu_set(ctx, rname, ival)


def xavu_sets(ctx: MsgContext, rname: str, sval: str) -> int:
    """$xavu(rname) = sval."""
    return u.xavu_set(ctx, rname, sval)


def xavu_get(ctx: MsgContext, rname: str) -> Value:
    """$xavu(rname), nil when missing."""
    return u.xavu_get(ctx, rname)


def xavu_gete(ctx: MsgContext, rname: str) -> Value:
    """$xavu(rname), "" when missing."""
    return _e(u.xavu_get(ctx, rname))


def xavu_getw(ctx: MsgContext, rname: str) -> Value:
    """$xavu(rname), "<null>" when missing."""
    return _w(u.xavu_get(ctx, rname))


def xavu_child_seti(ctx: MsgContext, rname: str, cname: str, ival: int) -> int:
    """$xavu(rname=>cname) = ival."""
    return u.xavu_child_set(ctx, rname, cname, ival)


def xavu_child_sets(ctx: MsgContext, rname: str, cname: str, sval: str) -> int:
    """$xavu(rname=>cname) = sval."""
    return u.xavu_child_set(ctx, rname, cname, sval)


def xavu_child_get(ctx: MsgContext, rname: str, cname: str) -> Value:
    """$xavu(rname=>cname), nil when missing."""
    return u.xavu_child_get(ctx, rname, cname)


def xavu_child_gete(ctx: MsgContext, rname: str, cname: str) -> Value:
    """$xavu(rname=>cname), "" when missing."""
    return _e(u.xavu_child_get(ctx, rname, cname))


def xavu_child_getw(ctx: MsgContext, rname: str, cname: str) -> Value:
    """$xavu(rname=>cname), "<null>" when missing."""
    return _w(u.xavu_child_get(ctx, rname, cname))


def xavu_params_explode(ctx: MsgContext, sparams: str, sxname: str) -> int:
    """``a=b;c=d`` -> $xavu(sxname) with fields a and c."""
    return u.xavu_params_explode(ctx, sparams, sxname)


def xavu_params_implode(ctx: MsgContext, sxname: str, svname: str) -> int:
    """The fields of $xavu(sxname) as ``a=b;c=d;`` into variable ``svname``."""
    text = u.xavu_params_text(ctx, sxname)
    return -1 if text is None else v.assign(ctx, svname, text)
