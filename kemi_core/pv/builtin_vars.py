"""Script variables: $var (per process), $shv (shared), $avp and $xavp (per message), $env."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.pv.registry import PvError, PvValue, register_builtin

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_VAR_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _var_name(raw: str) -> str:
    name = raw.strip()
    if not _VAR_NAME_RE.match(name):
        raise PvError(f"invalid variable name {raw!r}")
    return name


# ---- $var / $shv: never $null; a never-set variable or one set to $null reads as 0 ---------
def _get_var(ctx: MsgContext, name: str) -> PvValue:
    return ctx.core.script_vars.get(name, 0)


def _set_var(ctx: MsgContext, name: str, value: PvValue) -> None:
    ctx.core.script_vars[name] = 0 if value is None else value


def _get_shv(ctx: MsgContext, name: str) -> PvValue:
    return ctx.core.shared_vars.get(name, 0)


def _set_shv(ctx: MsgContext, name: str, value: PvValue) -> None:
    ctx.core.shared_vars[name] = 0 if value is None else value


# ---- $avp: a stack of values per name, newest first ------------------------------------------
def _avp_name(raw: str) -> str:
    name = raw.strip()
    if len(name) > 2 and name[1] == ":" and name[0] in "si":
        name = name[2:]  # Kamailio's s:/i: name-type prefixes
    return _var_name(name)


def _get_avp(ctx: MsgContext, name: str) -> PvValue:
    values = ctx.avps.get(name)
    return values[0] if values else None


def _set_avp(ctx: MsgContext, name: str, value: PvValue) -> None:
    if value is None:
        ctx.avps.pop(name, None)  # $avp(x) = $null deletes every value
    else:
        ctx.avps.setdefault(name, []).insert(0, value)


def _avp_index(ctx: MsgContext, name: str, idx: int | None) -> PvValue:
    values = ctx.avps.get(name)
    if not values:
        return None
    if idx is None:
        return ",".join(str(v) for v in values)
    try:
        return values[idx]  # type: ignore[no-any-return]
    except IndexError:
        return None


# ---- $xavp(root[i]=>field) -------------------------------------------------------------------
@attrs.frozen
class XavpRef:
    root: str
    index: int | None  # None: not written (reads item 0, assignment adds a new item)
    field: str | None


_XAVP_PART_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[\s*(-?\d+)\s*\])?\s*$")


def _xavp_ref(raw: str) -> XavpRef:
    root_text, arrow, field_text = raw.partition("=>")
    m = _XAVP_PART_RE.match(root_text)
    if not m:
        raise PvError(f"invalid $xavp name {raw!r}")
    index = int(m.group(2)) if m.group(2) is not None else None
    field = None
    if arrow:
        fm = _XAVP_PART_RE.match(field_text)
        if not fm or fm.group(2) is not None:
            raise PvError(f"invalid $xavp field in {raw!r}")
        field = fm.group(1)
    return XavpRef(m.group(1), index, field)


def _xavp_item(ctx: MsgContext, ref: XavpRef) -> dict[str, Any] | None:
    items = ctx.xavps.get(ref.root)
    if not items:
        return None
    try:
        return items[ref.index or 0]
    except IndexError:
        return None


def _get_xavp(ctx: MsgContext, ref: XavpRef) -> PvValue:
    item = _xavp_item(ctx, ref)
    if item is None:
        return None
    if ref.field is None:
        return f"<<xavp:{ref.root}>>"
    value = item.get(ref.field)
    if isinstance(value, list):
        return value[0] if value else None
    return value  # type: ignore[no-any-return]


def _set_xavp(ctx: MsgContext, ref: XavpRef, value: PvValue) -> None:
    items = ctx.xavps.get(ref.root)
    if value is None:
        if ref.field is None:
            if ref.index is None:
                ctx.xavps.pop(ref.root, None)
            elif items and -len(items) <= ref.index < len(items):
                del items[ref.index]
        else:
            item = _xavp_item(ctx, ref)
            if item is not None:
                item.pop(ref.field, None)
        return
    if ref.field is None:
        raise PvError(f"$xavp({ref.root}) needs a field to assign a value (root=>field)")
    if ref.index is None:
        # $xavp(r=>f) = v starts a new item on top of the list.
        ctx.xavps.setdefault(ref.root, []).insert(0, {ref.field: value})
        return
    item = _xavp_item(ctx, ref)
    if item is None:
        raise PvError(f"$xavp({ref.root}[{ref.index}]) does not exist")
    item[ref.field] = value


def _get_env(ctx: MsgContext, name: str) -> PvValue:
    return os.environ.get(name)


def _register() -> None:
    reg = register_builtin
    reg("var", _get_var, _set_var, takes_arg=True, parse_arg=_var_name,
        doc="script variable, per process")
    reg("shv", _get_shv, _set_shv, takes_arg=True, parse_arg=_var_name,
        doc="shared variable")
    reg("avp", _get_avp, _set_avp, takes_arg=True, parse_arg=_avp_name,
        index_getter=_avp_index, doc="AVP of this message (newest value)")
    reg("xavp", _get_xavp, _set_xavp, takes_arg=True, parse_arg=_xavp_ref,
        doc="extended AVP root[index]=>field")
    reg("env", _get_env, takes_arg=True, parse_arg=lambda s: s.strip(),
        doc="environment variable")


_register()
