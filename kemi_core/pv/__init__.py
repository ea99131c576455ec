"""Pseudo-variables as Kamailio has them: ``$ru``, ``$hdr(Via)``, ``$var(x)``, ``$(ru{uri.user})``.

``parse_pv`` compiles a spec once; ``get_pv`` / ``set_pv`` cache compiled specs by text (KEMI's
``KSR.pv.get("$ru")`` passes the same few strings on every message). Modules add their own
variables with ``register_pv`` (tm: ``$T_reply_code``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.caching import bounded_cache
from kemi_core.pv import builtin_msg, builtin_net, builtin_vars  # noqa: F401  (core PVs)
from kemi_core.pv.format import NULL_TEXT, compile_format
from kemi_core.pv.registry import (
    PvDef,
    PvError,
    PvReadOnlyError,
    PvValue,
    lookup_pv,
    register_pv,
    registered_names,
)
from kemi_core.pv.spec import PvSpec, parse_pv

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_CACHE_MAX = 4096
_FORMATS_MAX = 2048


#: ``parse_pv`` with a cache of compiled specs.
cached_pv: Callable[[str], PvSpec] = bounded_cache(parse_pv, _CACHE_MAX)
#: ``compile_format`` with a cache of compiled formatters (xlog, pv_printf, evalx, ...).
cached_format: Callable[[str], Callable[[MsgContext], str]] = bounded_cache(
    compile_format, _FORMATS_MAX)


def get_pv(ctx: MsgContext, spec_text: str) -> PvValue:
    """The value of ``spec_text`` for this message (None for $null)."""
    return cached_pv(spec_text).get(ctx)


def set_pv(ctx: MsgContext, spec_text: str, value: PvValue) -> None:
    """Assign ``value`` (None = $null) to a writable pseudo-variable."""
    cached_pv(spec_text).set(ctx, value)


__all__ = [
    "NULL_TEXT", "PvDef", "PvError", "PvReadOnlyError", "PvSpec", "PvValue", "cached_format",
    "cached_pv", "compile_format", "get_pv", "lookup_pv", "parse_pv", "register_pv", "registered_names",
    "set_pv",
]
