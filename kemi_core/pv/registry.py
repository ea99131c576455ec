"""The table of pseudo-variable names: the core's own and those modules add (tm's $T_*).

A name is looked up once, when a spec is parsed; the spec then holds the getter directly, so
reading ``$ru`` per message is one Python call, not a dict walk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

#: What a PV yields: Kamailio's string or integer value, or None for $null.
PvValue = str | int | None


class PvError(ValueError):
    """A pseudo-variable spec is unknown or malformed, or the variable cannot be written."""


class PvReadOnlyError(PvError):
    """Assignment to a pseudo-variable that has no setter ($ci, $si, ...)."""


@attrs.frozen
class PvDef:
    """One pseudo-variable class, e.g. ``ru`` or ``hdr`` (which takes an argument).

    Without an argument ``getter(ctx)`` / ``setter(ctx, value)``; with ``takes_arg``
    ``getter(ctx, arg)`` / ``setter(ctx, arg, value)``, where ``arg`` is what ``parse_arg``
    made of the text between the parentheses (the text itself when there is no parse_arg).
    ``index_getter(ctx, arg, idx)`` serves ``$(name(arg)[idx])``; idx is an int or None for ``*``;
    ``index_setter(ctx, arg, idx, value)`` assigns ``$(name(arg)[idx])`` (idx an int).
    """

    name: str
    getter: Callable[..., PvValue]
    setter: Callable[..., None] | None = None
    takes_arg: bool = False
    parse_arg: Callable[[str], Any] | None = None
    index_getter: Callable[[MsgContext, Any, int | None], PvValue] | None = None
    doc: str = ""
    index_setter: Callable[[MsgContext, Any, int, PvValue], None] | None = None


#: The core's own pseudo-variables ($ru, $si, $var(x) ...), registered when kemi_core.pv is
#: imported; every Core's table (kemi_core.pv.table.PvTable) starts from a copy.
BUILTIN_PVS: dict[str, PvDef] = {}

PvLookup = Callable[[str], "PvDef | None"]


def make_pv(name: str, getter: Callable[..., PvValue], setter: Callable[..., None] | None = None,
            takes_arg: bool = False, parse_arg: Callable[[str], Any] | None = None,
            index_getter: Callable[[MsgContext, Any, int | None], PvValue] | None = None,
            doc: str = "",
            index_setter: Callable[[MsgContext, Any, int, PvValue], None] | None = None) -> PvDef:
    """A checked PvDef: ``$name`` is letters, digits and ``_``, not starting with a digit."""
    name = name.lstrip("$")
    if not name or not (name[0].isalpha() or name[0] == "_") or not all(
            c.isalnum() or c == "_" for c in name):
        raise PvError(f"invalid pseudo-variable name {name!r}")
    return PvDef(name, getter, setter, takes_arg, parse_arg, index_getter, doc, index_setter)


def register_builtin(name: str, getter: Callable[..., PvValue],
                     setter: Callable[..., None] | None = None, takes_arg: bool = False, *,
                     parse_arg: Callable[[str], Any] | None = None,
                     index_getter: Callable[[MsgContext, Any, int | None], PvValue] | None = None,
                     doc: str = "") -> PvDef:
    """Add one of the core's own pseudo-variables (at import of kemi_core.pv only)."""
    pv = make_pv(name, getter, setter, takes_arg, parse_arg, index_getter, doc)
    if pv.name in BUILTIN_PVS:
        raise PvError(f"pseudo-variable ${pv.name} is registered twice")
    BUILTIN_PVS[pv.name] = pv
    return pv


def lookup_builtin(name: str) -> PvDef | None:
    """The core's own pseudo-variable class ``$name``, or None."""
    return BUILTIN_PVS.get(name)
