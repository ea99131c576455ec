"""$xavu: like $xavp, but one item per name (assigning replaces instead of stacking).

Kept in ``ctx.mod_state["pv.xavu"]``: name -> plain value, or name -> dict of fields.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import MsgContext

log = logging.getLogger("kemi.pv")

Value = str | int | None


def _store(ctx: MsgContext) -> dict[str, Any]:
    return ctx.mod_state.setdefault("pv.xavu", {})  # type: ignore[no-any-return]


def xavu_set(ctx: MsgContext, rname: str, value: Value) -> int:
    _store(ctx)[rname] = value
    return 1


def xavu_get(ctx: MsgContext, rname: str) -> Value:
    value = _store(ctx).get(rname)
    return f"<<xavu:{rname}>>" if isinstance(value, dict) else value


def xavu_rm(ctx: MsgContext, rname: str) -> int:
    return 1 if _store(ctx).pop(rname, None) is not None else -1


def xavu_is_null(ctx: MsgContext, rname: str) -> int:
    return 1 if _store(ctx).get(rname) is None else -1


def xavu_child_set(ctx: MsgContext, rname: str, cname: str, value: Value) -> int:
    store = _store(ctx)
    cur = store.get(rname)
    if cur is None:
        cur = store[rname] = {}
    if not isinstance(cur, dict):
        log.error("xavu(%s) holds a value, not a list of fields", rname)
        return -1
    cur[cname] = value
    return 1


def xavu_child_get(ctx: MsgContext, rname: str, cname: str) -> Value:
    cur = _store(ctx).get(rname)
    return cur.get(cname) if isinstance(cur, dict) else None


def xavu_child_rm(ctx: MsgContext, rname: str, cname: str) -> int:
    cur = _store(ctx).get(rname)
    if not isinstance(cur, dict) or cname not in cur:
        return -1
    del cur[cname]
    return 1


def xavu_child_is_null(ctx: MsgContext, rname: str, cname: str) -> int:
    return 1 if xavu_child_get(ctx, rname, cname) is None else -1


def xavu_params_explode(ctx: MsgContext, sparams: str, xname: str) -> int:
    fields: dict[str, Value] = {}
    for part in sparams.split(";"):
        name, _eq, value = part.partition("=")
        if name.strip():
            fields[name.strip()] = value.strip()
    if not fields:
        return -1
    _store(ctx)[xname] = fields
    return 1


def xavu_params_text(ctx: MsgContext, xname: str) -> str | None:
    cur = _store(ctx).get(xname)
    if not isinstance(cur, dict):
        return None
    return "".join(f"{k}={'' if v is None else v};" for k, v in reversed(cur.items()))


def pv_xavu_print(ctx: MsgContext) -> int:
    """Log every $xavu at INFO level."""
    for name, value in _store(ctx).items():
        log.info("xavu %s: %r", name, value)
    return 1
