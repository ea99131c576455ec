"""$xavp lists as KSR.pvx functions (and $xavi, the same with case-insensitive names).

Storage is the core's: ``ctx.xavps`` maps a name to a list of items, newest first; an item is
a dict ``field -> value`` (a list value holds several values of one field, first = newest).
A root item holding a plain value (``xavp_seti("x", 1)``) is stored as ``{ROOT_VALUE: 1}``;
reading ``$xavp(x)`` in kamailio.cfg shows such an item as ``<<xavp:x>>``. Dict order is
insertion order, so Kamailio's child order (newest first) is the dict reversed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from kemi_core.api import MsgContext

log = logging.getLogger("kemi.pv")

ROOT_VALUE = ""  # the key of a plain root value; no real field has an empty name
NULL_TEXT = "<null>"

Value = str | int | None
Store = Callable[[MsgContext], dict[str, list[dict[str, Any]]]]


def _first(value: Any) -> Value:
    if isinstance(value, list):
        return value[0] if value else None
    return value  # type: ignore[no-any-return]


class XavpFamily:
    """One xavp-like namespace: where its lists live and how names compare."""

    def __init__(self, label: str, store: Store, fold: bool) -> None:
        self.label = label
        self.store = store
        self.fold = fold

    def _name(self, name: str) -> str:
        return name.lower() if self.fold else name

    def items(self, ctx: MsgContext, rname: str) -> list[dict[str, Any]] | None:
        return self.store(ctx).get(self._name(rname)) or None

    def push(self, ctx: MsgContext, rname: str, item: dict[str, Any]) -> None:
        self.store(ctx).setdefault(self._name(rname), []).insert(0, item)

    # ---- root values -----------------------------------------------------------------
    def set_value(self, ctx: MsgContext, rname: str, value: Value) -> int:
        self.push(ctx, rname, {ROOT_VALUE: value})
        return 1

    def get(self, ctx: MsgContext, rname: str) -> Value:
        items = self.items(ctx, rname)
        if not items:
            return None
        if ROOT_VALUE in items[0]:
            return _first(items[0][ROOT_VALUE])
        return f"<<{self.label}:{rname}>>"

    def rm(self, ctx: MsgContext, rname: str) -> int:
        return 1 if self.store(ctx).pop(self._name(rname), None) else -1

    def is_null(self, ctx: MsgContext, rname: str) -> int:
        return 1 if self.get(ctx, rname) is None else -1

    # ---- children of the first item ------------------------------------------------------
    def child_set(self, ctx: MsgContext, rname: str, cname: str, value: Value) -> int:
        items = self.items(ctx, rname)
        if not items:
            self.push(ctx, rname, {self._name(cname): value})
            return 1
        if ROOT_VALUE in items[0]:
            log.error("%s(%s) holds a value, not a list of fields", self.label, rname)
            return -1
        items[0][self._name(cname)] = value
        return 1

    def child_get(self, ctx: MsgContext, rname: str, cname: str) -> Value:
        items = self.items(ctx, rname)
        if not items:
            return None
        return _first(items[0].get(self._name(cname)))

    def child_rm(self, ctx: MsgContext, rname: str, cname: str) -> int:
        items = self.items(ctx, rname)
        if not items or self._name(cname) not in items[0]:
            return -1
        del items[0][self._name(cname)]
        return 1

    def child_is_null(self, ctx: MsgContext, rname: str, cname: str) -> int:
        return 1 if self.child_get(ctx, rname, cname) is None else -1

    # ---- params strings --------------------------------------------------------------
    def params_explode(self, ctx: MsgContext, sparams: str, xname: str) -> int:
        item: dict[str, Any] = {}
        for part in sparams.split(";"):
            name, _eq, value = part.partition("=")
            if not name.strip():
                if part.strip():
                    return -1
                continue
            item[self._name(name.strip())] = value.strip()
        if not item:
            return -1
        self.push(ctx, xname, item)
        return 1

    def params_text(self, ctx: MsgContext, xname: str) -> str | None:
        items = self.items(ctx, xname)
        if not items or ROOT_VALUE in items[0]:
            return None
        out = []
        for name in reversed(items[0]):
            value = _first(items[0][name])
            out.append(f"{name}={'' if value is None else value};")
        return "".join(out)

    def print_all(self, ctx: MsgContext) -> int:
        for name, items in self.store(ctx).items():
            for i, item in enumerate(items):
                log.info("%s %s[%d]: %r", self.label, name, i, item)
        return 1

    # ---- copying -----------------------------------------------------------------------
    def copy_item(self, ctx: MsgContext, src: str, sidx: int, dst: str) -> int:
        items = self.items(ctx, src)
        if not items or not -len(items) <= sidx < len(items):
            return -1
        self.store(ctx).setdefault(self._name(dst), []).append(copy.deepcopy(items[sidx]))
        return 1

    def copy_item_to(self, ctx: MsgContext, src: str, sidx: int, dst: str, didx: int) -> int:
        items, target = self.items(ctx, src), self.items(ctx, dst)
        if not items or not -len(items) <= sidx < len(items):
            return -1
        if not target or not -len(target) <= didx < len(target):
            return -1
        target[didx] = copy.deepcopy(items[sidx])
        return 1


XAVP = XavpFamily("xavp", lambda ctx: ctx.xavps, fold=False)
XAVI = XavpFamily("xavi", lambda ctx: ctx.mod_state.setdefault("pv.xavi", {}), fold=True)


def slist_explode(ctx: MsgContext, slist: str, sep: str, mode: str, xname: str) -> int:
    """Split ``slist`` at any character of ``sep`` into field ``v`` of a new $xavp(xname)
    item (empty tokens skipped; mode ``t`` trims white space)."""
    if not sep:
        return -1
    tokens: list[str] = []
    cur: list[str] = []
    for ch in slist + sep[0]:
        if ch in sep:
            tok = "".join(cur)
            tok = tok.strip() if "t" in mode else tok
            if tok:
                tokens.append(tok)
            cur = []
        else:
            cur.append(ch)
    if not tokens:
        return -1
    XAVP.push(ctx, xname, {"v": tokens})
    return 1
