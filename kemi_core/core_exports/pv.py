"""KSR.pv.*: read and write pseudo-variables by their spec text ("$ru", "$var(x)" ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv import PvError, PvValue
from kemi_core.sip.calls_fast import pv_reader

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

NULL_TEXT = "<<null>>"


def get(ctx: MsgContext, pvname: str) -> PvValue:
    """The value (str or int), None for $null or an invalid name."""
    try:  # (the spec looked up in place: scripts read variables all the time)
        spec = ctx.core.pv.spec(pvname)
    except PvError as exc:
        script_log.error("invalid pv [%s]: %s", pvname, exc)
        return None
    return spec.get(ctx)


def gete(ctx: MsgContext, pvname: str) -> PvValue:
    """The value, or "" for $null."""
    value = get(ctx, pvname)
    return "" if value is None else value


def getw(ctx: MsgContext, pvname: str) -> PvValue:
    """The value, or "<<null>>" for $null (for languages that cannot print nil)."""
    value = get(ctx, pvname)
    return NULL_TEXT if value is None else value


def getvn(ctx: MsgContext, pvname: str, vn: int) -> PvValue:
    """The value, or ``vn`` for $null."""
    value = get(ctx, pvname)
    return vn if value is None else value


def getvs(ctx: MsgContext, pvname: str, vs: str) -> PvValue:
    """The value, or ``vs`` for $null."""
    value = get(ctx, pvname)
    return vs if value is None else value


def geti(ctx: MsgContext, pvname: str) -> int:
    """The value as an integer (0 for $null or text that is not a number)."""
    value = get(ctx, pvname)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip()) if value is not None else 0
    except ValueError:
        return 0


def _set(ctx: MsgContext, pvname: str, val: PvValue) -> None:
    """Assign ``val`` (KSR.pv.sets and KSR.pv.seti are this function itself: scripts assign
    for every message, and a wrapper per kind would cost a call each time)."""
    try:
        spec = ctx.core.pv.spec(pvname)
    except PvError as exc:
        script_log.error("invalid pv [%s]: %s", pvname, exc)
        return
    try:
        spec.set(ctx, val)  # a plain variable's set is its pvdef's setter itself
    except PvError as exc:
        script_log.error("unable to set pv [%s]: %s", pvname, exc)


def unset(ctx: MsgContext, pvname: str) -> None:
    """Assign $null."""
    _set(ctx, pvname, None)


def is_null(ctx: MsgContext, pvname: str) -> bool:
    """True when the variable is $null (False for an invalid name, which is logged)."""
    try:  # (as in get(): scripts test variables for every message)
        spec = ctx.core.pv.spec(pvname)
    except PvError as exc:
        script_log.error("invalid pv [%s]: %s", pvname, exc)
        return False
    return spec.get(ctx) is None


#: get and is_null as scripts call them: the spec's getter called from C for a name whose
#: spec compiles (kemi_core.sip.pv_reader), the functions above for the rest
_get_compiled: Any = get if pv_reader is None else pv_reader((False, get))
_is_null_compiled: Any = is_null if pv_reader is None else pv_reader((True, is_null))


def exports() -> list[KemiExport]:
    x, n = ReturnKind.XVAL, ReturnKind.NONE
    return [
        attrs.evolve(export("pv", "get", get, "s", x), func=_get_compiled),
        export("pv", "gete", gete, "s", x),
        export("pv", "getw", getw, "s", x),
        export("pv", "getvn", getvn, "si", x),
        export("pv", "getvs", getvs, "ss", x),
        export("pv", "geti", geti, "s", ReturnKind.INT),
        export("pv", "sets", _set, "ss", n, doc="Assign a string."),
        export("pv", "seti", _set, "si", n, doc="Assign an integer."),
        export("pv", "unset", unset, "s", n),
        attrs.evolve(export("pv", "is_null", is_null, "s", ReturnKind.BOOL),
                     func=_is_null_compiled),
    ]
