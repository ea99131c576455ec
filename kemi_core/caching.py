"""A bounded memo for compile-once helpers keyed by text (PV specs, formats, regexes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Memo(dict[str, T]):
    """The compiled results by text; a miss compiles (``__missing__``)."""

    __slots__ = ("compile_fn", "limit")

    def __init__(self, compile_fn: Callable[[str], T], limit: int) -> None:
        super().__init__()
        self.compile_fn = compile_fn
        self.limit = limit

    def __missing__(self, text: str) -> T:
        value = self.compile_fn(text)  # an error propagates: nothing is stored
        if len(self) >= self.limit:
            self.clear()
        self[text] = value
        return value


def bounded_cache(compile_fn: Callable[[str], T], limit: int) -> Callable[[str], T]:
    """``compile_fn`` memoised by its text argument; cleared when full, so scripts that build
    strings dynamically cannot grow it without limit. Errors are not cached.

    The memo's own ``__getitem__`` is what callers get: a hit (every message asks for the same
    few texts: ``KSR.pv.sets("$du", ...)``) is a dict lookup in C, with no Python call."""
    return _Memo(compile_fn, limit).__getitem__
