"""The pseudo-variables of one Core (``core.pv``): the core's own and those modules add.

A module registers its variables in ``mod_register`` (``core.pv.register("T_reply_code", fn)``);
specs and formats are compiled once per text and cached here, so ``core.pv.get(ctx, "$ru")``
on every message is a dict lookup and one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.caching import bounded_cache
from kemi_core.pv.format import compile_format
from kemi_core.pv.registry import BUILTIN_PVS, PvDef, PvError, PvValue, make_pv
from kemi_core.pv.spec import PvSpec, parse_pv

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_SPECS_MAX = 4096
_FORMATS_MAX = 2048


class PvTable:
    """Pseudo-variable classes by name, with cached compiled specs and formats."""

    def __init__(self) -> None:
        self._defs: dict[str, PvDef] = dict(BUILTIN_PVS)
        #: ``spec(text)``: the compiled spec of ``"$ru"``, ``"$(hdr(Via)[1])"`` ... (cached).
        self.spec: Callable[[str], PvSpec] = bounded_cache(self.parse, _SPECS_MAX)
        #: ``format(text)``: an xlog-style format compiled to ``f(ctx) -> str`` (cached).
        self.format: Callable[[str], Callable[[MsgContext], str]] = bounded_cache(
            self.compile_format, _FORMATS_MAX)

    def register(self, name: str, getter: Callable[..., PvValue],
                 setter: Callable[..., None] | None = None, takes_arg: bool = False, *,
                 parse_arg: Callable[[str], Any] | None = None,
                 index_getter: Callable[[MsgContext, Any, int | None], PvValue] | None = None,
                 index_setter: Callable[[MsgContext, Any, int, PvValue], None] | None = None,
                 doc: str = "", replace: bool = False) -> PvDef:
        """Add the pseudo-variable class ``$name`` (from ``mod_register``).

        Without an argument ``getter(ctx)`` / ``setter(ctx, value)``; with ``takes_arg``
        ``getter(ctx, arg)`` / ``setter(ctx, arg, value)``, where ``arg`` is what ``parse_arg``
        made of the text in parentheses. ``index_getter(ctx, arg, idx)`` serves
        ``$(name(arg)[idx])`` (idx an int, or None for ``[*]``) and ``index_setter(ctx, arg, idx,
        value)`` assigns it. A name registered twice is an error unless ``replace`` is given.
        """
        pv = make_pv(name, getter, setter, takes_arg, parse_arg, index_getter, doc, index_setter)
        if pv.name in self._defs and not replace:
            raise PvError(f"pseudo-variable ${pv.name} is registered twice")
        self._defs[pv.name] = pv
        return pv

    def lookup(self, name: str) -> PvDef | None:
        """The class ``$name`` (without the ``$``), or None."""
        return self._defs.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._defs)

    def parse(self, text: str) -> PvSpec:
        """Compile a spec (uncached; raises PvError for an unknown or malformed one)."""
        return parse_pv(text, self.lookup)

    def compile_format(self, fmt: str) -> Callable[[MsgContext], str]:
        """Compile a format such as ``"r-uri $ru from $si"`` (uncached; PvError when bad)."""
        return compile_format(fmt, self.lookup)

    def get(self, ctx: MsgContext, text: str) -> PvValue:
        """The value of ``text`` (``"$ru"``) for this message; None for $null."""
        return self.spec(text).get(ctx)

    def set(self, ctx: MsgContext, text: str, value: PvValue) -> None:
        """Assign ``value`` (None = $null) to a writable pseudo-variable."""
        self.spec(text).set(ctx, value)
