"""htable's pseudo-variables: $sht(t=>k), $shtex, $shtinc, $shtdec, $shtcn, $shtcv,
$shtitkey(i), $shtitval(i). The table name and the key may hold pseudo-variables
(``$sht(ipban=>$si)``); they are compiled once, when the spec is parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import PvError, PvValue
from kemi_htable.registry import ITERATORS, table
from kemi_htable.table import count_matching

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

Text = Callable[["MsgContext"], str]
Ref = tuple[Text, Text]


def _text(core: Core, raw: str, strip: bool = True) -> Text:
    if strip:
        raw = raw.strip()
    if "$" not in raw:
        return lambda _ctx: raw
    return core.pv.compile_format(raw)


def parse_ref(core: Core, raw: str) -> Ref:
    """``name=>key`` (either part may hold pseudo-variables; the key is taken as written)."""
    name, arrow, key = raw.partition("=>")
    if not arrow or not name.strip():
        raise PvError(f"htable: expected table=>key, not {raw!r}")
    return _text(core, name), _text(core, key, strip=False)


def _get(ctx: MsgContext, ref: Ref) -> PvValue:
    t = table(ref[0](ctx), "$sht")
    return None if t is None else t.get(ref[1](ctx))


def _set(ctx: MsgContext, ref: Ref, value: PvValue) -> None:
    t = table(ref[0](ctx), "$sht")
    if t is None:
        return
    key = ref[1](ctx)
    if value is None:
        t.delete(key)
    else:
        t.set(key, value)


def _get_ex(ctx: MsgContext, ref: Ref) -> PvValue:
    t = table(ref[0](ctx), "$shtex")
    return 0 if t is None else t.expires_in(ref[1](ctx))


def _set_ex(ctx: MsgContext, ref: Ref, value: PvValue) -> None:
    t = table(ref[0](ctx), "$shtex")
    if t is not None:
        try:
            seconds = int(value or 0)
        except ValueError:
            raise PvError(f"$shtex: {value!r} is not a number of seconds")
        t.set_expire(ref[1](ctx), seconds)


def _adder(delta: int) -> Callable[[MsgContext, Ref], PvValue]:
    def get(ctx: MsgContext, ref: Ref) -> PvValue:
        t = table(ref[0](ctx), "$shtinc")
        return None if t is None else t.add(ref[1](ctx), delta)
    return get


def _count(names: bool) -> Callable[[MsgContext, Ref], PvValue]:
    def get(ctx: MsgContext, ref: Ref) -> PvValue:
        t = table(ref[0](ctx), "$shtcn")
        if t is None:
            return 0
        items = t.snapshot()
        texts = [k for k, _ in items] if names else [v for _, v in items if isinstance(v, str)]
        return count_matching(texts, ref[1](ctx))
    return get


def _iter_part(index: int) -> Callable[[MsgContext, Text], PvValue]:
    def get(ctx: MsgContext, name: Text) -> PvValue:
        it = ITERATORS.get(name(ctx))
        cur = it.current if it is not None else None
        return None if cur is None else cur[index]
    return get


def register_pvs(core: Core) -> None:
    def ref(raw: str) -> Ref:
        return parse_ref(core, raw)

    def text(raw: str) -> Text:
        return _text(core, raw)

    defs: tuple[tuple[str, Callable[..., PvValue], Callable[..., None] | None,
                      Callable[[str], object], str], ...] = (
        ("sht", _get, _set, ref, "an item of a hash table: $sht(table=>key)"),
        ("shtex", _get_ex, _set_ex, ref, "seconds until the item expires"),
        ("shtinc", _adder(1), None, ref, "increment the item and read it"),
        ("shtdec", _adder(-1), None, ref, "decrement the item and read it"),
        ("shtcn", _count(True), None, ref, "items whose name matches: $shtcn(t=>re)"),
        ("shtcv", _count(False), None, ref, "items whose value matches"),
        ("shtitkey", _iter_part(0), None, text, "key of an iterator's current item"),
        ("shtitval", _iter_part(1), None, text, "value of an iterator's current item"),
    )
    for name, getter, setter, parse, doc in defs:
        core.pv.register(name, getter, setter, takes_arg=True, parse_arg=parse, doc=doc)
