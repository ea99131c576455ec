"""Pseudo-variables as Kamailio has them: ``$ru``, ``$hdr(Via)``, ``$var(x)``, ``$(ru{uri.user})``.

``parse_pv`` compiles a spec once; ``get_pv`` / ``set_pv`` cache compiled specs by text (KEMI's
``KSR.pv.get("$ru")`` passes the same few strings on every message). Modules add their own
variables with ``register_pv`` (tm: ``$T_reply_code``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

#: Compiled specs by text; bounded so scripts that build spec strings dynamically cannot grow it
#: without limit.
_CACHE: dict[str, PvSpec] = {}
_CACHE_MAX = 4096


def cached_pv(spec_text: str) -> PvSpec:
    """``parse_pv`` with a cache of compiled specs."""
    spec = _CACHE.get(spec_text)
    if spec is None:
        spec = parse_pv(spec_text)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[spec_text] = spec
    return spec


def get_pv(ctx: MsgContext, spec_text: str) -> PvValue:
    """The value of ``spec_text`` for this message (None for $null)."""
    return cached_pv(spec_text).get(ctx)


def set_pv(ctx: MsgContext, spec_text: str, value: PvValue) -> None:
    """Assign ``value`` (None = $null) to a writable pseudo-variable."""
    cached_pv(spec_text).set(ctx, value)


__all__ = [
    "NULL_TEXT", "PvDef", "PvError", "PvReadOnlyError", "PvSpec", "PvValue", "cached_pv",
    "compile_format", "get_pv", "lookup_pv", "parse_pv", "register_pv", "registered_names",
    "set_pv",
]
