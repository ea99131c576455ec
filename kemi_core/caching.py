"""A bounded memo for compile-once helpers keyed by text (PV specs, formats, regexes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def bounded_cache(compile_fn: Callable[[str], T], limit: int) -> Callable[[str], T]:
    """``compile_fn`` memoised by its text argument; cleared when full, so scripts that build
    strings dynamically cannot grow it without limit. Errors are not cached."""
    cache: dict[str, T] = {}

    def cached(text: str) -> T:
        value = cache.get(text)
        if value is None:
            value = compile_fn(text)
            if len(cache) >= limit:
                cache.clear()
            cache[text] = value
        return value

    cached.__doc__ = f"``{compile_fn.__name__}`` with a cache of compiled results by text."
    return cached
