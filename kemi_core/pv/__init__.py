"""Pseudo-variables as Kamailio has them: ``$ru``, ``$hdr(Via)``, ``$var(x)``, ``$(ru{uri.user})``.

Each Core has its table, ``core.pv`` (kemi_core.pv.table.PvTable): the core's own variables
(registered at import, below) plus those modules add with ``core.pv.register`` (tm:
``$T_reply_code``, ...). ``get_pv`` / ``set_pv`` read and write through the message's core;
specs are compiled once per text and cached there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.pv import (  # noqa: F401  (core PVs)
    builtin_cfg,
    builtin_msg,
    builtin_net,
    builtin_socket,
    builtin_time,
    builtin_vars,
)
from kemi_core.pv.format import NULL_TEXT, compile_format
from kemi_core.pv.registry import PvDef, PvError, PvReadOnlyError, PvValue, lookup_builtin
from kemi_core.pv.spec import PvSpec, parse_pv
from kemi_core.pv.table import PvTable

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


def get_pv(ctx: MsgContext, spec_text: str) -> PvValue:
    """The value of ``spec_text`` (``"$ru"``) for this message; None for $null."""
    return ctx.core.pv.spec(spec_text).get(ctx)


def set_pv(ctx: MsgContext, spec_text: str, value: PvValue) -> None:
    """Assign ``value`` (None = $null) to a writable pseudo-variable."""
    ctx.core.pv.spec(spec_text).set(ctx, value)


__all__ = [
    "NULL_TEXT", "PvDef", "PvError", "PvReadOnlyError", "PvSpec", "PvTable", "PvValue",
    "compile_format", "get_pv", "lookup_builtin", "parse_pv", "set_pv",
]
