"""Parsing ``$name``, ``$name(arg)`` and ``$(name(arg)[idx]{tr}...)`` into a compiled spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from kemi_core.pv.registry import (
    PvDef,
    PvError,
    PvLookup,
    PvReadOnlyError,
    PvValue,
    lookup_builtin,
)
from kemi_core.pv.transforms import Transform, compile_transform

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

#: What a spec's index is: "" (none written), an int, None for [*], or a variable.
Index: TypeAlias = "int | None | str | PvSpec"


def _name_end(text: str, pos: int) -> int:
    end = pos
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return end


def _closing(text: str, pos: int, open_c: str, close_c: str) -> int:
    """Index of the bracket closing the one at ``pos`` (nesting counted)."""
    depth = 0
    for i in range(pos, len(text)):
        c = text[i]
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return i
    raise PvError(f"unbalanced {open_c!r} in {text!r}")


def _int_index(value: PvValue) -> int:
    """A variable index as Kamailio reads it: its integer value, $null and text as 0."""
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


class PvSpec:
    """A parsed pseudo-variable: ``get(ctx)`` reads it, ``set(ctx, value)`` assigns it."""

    __slots__ = ("name", "text", "arg", "index", "transforms", "pvdef", "get", "set")

    def __init__(self, text: str, pvdef: PvDef, arg: Any, has_arg: bool,
                 index: Index, transforms: list[Transform]) -> None:
        self.name = pvdef.name
        self.text = text
        self.pvdef = pvdef
        self.arg = arg
        #: "" when no index was written, an int, None for [*], or a variable ([$var(i)]).
        self.index = index
        self.transforms = transforms
        self.get: Callable[[MsgContext], PvValue] = self._build_getter(has_arg)
        #: ``set(ctx, value)``: assign ``value`` (None = $null); raises PvReadOnlyError for
        #: read-only variables. Built once, like ``get``: for ``$du`` it is the setter itself.
        self.set: Callable[[MsgContext, PvValue], None] = self._build_setter()

    def _build_getter(self, has_arg: bool) -> Callable[[MsgContext], PvValue]:
        pvdef, arg, index = self.pvdef, self.arg, self.index
        base: Callable[[MsgContext], PvValue]
        idx_get = pvdef.index_getter
        if isinstance(index, PvSpec):
            assert idx_get is not None
            dyn_get, idx_of = idx_get, index.get

            def base(ctx: MsgContext) -> PvValue:
                return dyn_get(ctx, arg, _int_index(idx_of(ctx)))
        elif index != "":
            assert idx_get is not None
            const_get = idx_get

            def base(ctx: MsgContext) -> PvValue:
                return const_get(ctx, arg, index)  # type: ignore[arg-type]
        elif has_arg:
            getter = pvdef.getter

            def base(ctx: MsgContext) -> PvValue:
                return getter(ctx, arg)
        else:
            base = pvdef.getter
        if not self.transforms:
            return base
        trs = tuple(self.transforms)

        def transformed(ctx: MsgContext) -> PvValue:
            value = base(ctx)
            for tr in trs:
                value = tr(value)
            return value
        return transformed

    @property
    def writable(self) -> bool:
        if self.transforms or self.index is None:
            return False
        if self.index == "":
            return self.pvdef.setter is not None
        return self.pvdef.index_setter is not None

    def _build_setter(self) -> Callable[[MsgContext, PvValue], None]:
        pvdef, arg, index = self.pvdef, self.arg, self.index
        if not self.writable:
            text = self.text

            def read_only(ctx: MsgContext, value: PvValue) -> None:
                raise PvReadOnlyError(f"{text} is read-only")
            return read_only
        if index != "":
            index_setter = pvdef.index_setter
            assert index_setter is not None

            def set_at(ctx: MsgContext, value: PvValue) -> None:
                idx = _int_index(index.get(ctx)) if isinstance(index, PvSpec) else index
                assert isinstance(idx, int)
                index_setter(ctx, arg, idx, value)
            return set_at
        setter = pvdef.setter
        assert setter is not None
        if not pvdef.takes_arg:
            return setter  # the common case: no wrapper, one call less per assignment

        def set_arg(ctx: MsgContext, value: PvValue) -> None:
            setter(ctx, arg, value)
        return set_arg

    def __repr__(self) -> str:
        return f"PvSpec({self.text!r})"


def scan_pv(text: str, pos: int, lookup: PvLookup = lookup_builtin) -> tuple[PvSpec, int]:
    """Parse the spec starting at ``text[pos] == "$"``; returns it and the index after it.
    ``lookup`` finds a pseudo-variable class by name (a Core's ``core.pv.lookup``)."""
    if text[pos:pos + 1] != "$":
        raise PvError(f"a pseudo-variable starts with '$': {text!r}")
    if text[pos + 1:pos + 2] == "(":
        close = _closing(text, pos + 1, "(", ")")
        inner = text[pos + 2:close]
        spec = _parse_inner(inner, text[pos:close + 1], lookup)
        return spec, close + 1
    start = pos + 1
    end = _name_end(text, start)
    if end == start:
        raise PvError(f"missing pseudo-variable name after '$' in {text!r}")
    name = text[start:end]
    pvdef = lookup(name)
    if pvdef is None:
        raise PvError(f"unknown pseudo-variable ${name}")
    if pvdef.takes_arg:
        if text[end:end + 1] != "(":
            raise PvError(f"${name} needs an argument: ${name}(...)")
        close = _closing(text, end, "(", ")")
        raw_arg = text[end + 1:close]
        return _make(text[pos:close + 1], pvdef, raw_arg, "", []), close + 1
    return _make(text[pos:end], pvdef, None, "", []), end


def _parse_inner(inner: str, full: str, lookup: PvLookup) -> PvSpec:
    end = _name_end(inner, 0)
    name = inner[:end]
    if not name:
        raise PvError(f"missing pseudo-variable name in {full!r}")
    pvdef = lookup(name)
    if pvdef is None:
        raise PvError(f"unknown pseudo-variable ${name}")
    pos = end
    raw_arg: str | None = None
    if pvdef.takes_arg:
        if inner[pos:pos + 1] != "(":
            raise PvError(f"${name} needs an argument: ${name}(...)")
        close = _closing(inner, pos, "(", ")")
        raw_arg = inner[pos + 1:close]
        pos = close + 1
    index: Index = ""
    if inner[pos:pos + 1] == "[":
        close = _closing(inner, pos, "[", "]") if "[" in inner[pos + 1:] else inner.find("]", pos)
        if close < 0:
            raise PvError(f"unclosed index in {full!r}")
        idx_text = inner[pos + 1:close].strip()
        if pvdef.index_getter is None:
            raise PvError(f"${name} cannot be indexed ({full!r})")
        if idx_text.startswith("$"):  # [$var(i)]: the index is read when the variable is
            index = parse_pv(idx_text, lookup)
        elif idx_text == "*":
            index = None
        else:
            try:
                index = int(idx_text)
            except ValueError:
                raise PvError(f"bad index {idx_text!r} in {full!r}")
        pos = close + 1
    transforms: list[Transform] = []
    while inner[pos:pos + 1] == "{":
        close = _closing(inner, pos, "{", "}")
        transforms.append(compile_transform(inner[pos + 1:close]))
        pos = close + 1
    if pos != len(inner):
        raise PvError(f"unexpected {inner[pos:]!r} in {full!r}")
    return _make(full, pvdef, raw_arg, index, transforms)


def _make(text: str, pvdef: PvDef, raw_arg: str | None, index: Index,
          transforms: list[Transform]) -> PvSpec:
    arg: Any = raw_arg
    if pvdef.takes_arg:
        if raw_arg is None or raw_arg.strip() == "":
            raise PvError(f"${pvdef.name} needs a non-empty argument")
        arg = pvdef.parse_arg(raw_arg) if pvdef.parse_arg else raw_arg
    return PvSpec(text, pvdef, arg, pvdef.takes_arg, index, transforms)


def parse_pv(spec: str, lookup: PvLookup = lookup_builtin) -> PvSpec:
    """Compile a whole pseudo-variable spec (``"$ru"``, ``"$(hdr(Via)[1])"``...); the core's
    own variables only unless ``lookup`` (a Core's ``core.pv.lookup``) says otherwise."""
    text = spec.strip()
    if not text.startswith("$"):
        raise PvError(f"a pseudo-variable starts with '$': {spec!r}")
    pv, end = scan_pv(text, 0, lookup)
    if end != len(text):
        raise PvError(f"unexpected {text[end:]!r} after {text[:end]!r}")
    return pv
