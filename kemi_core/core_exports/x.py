"""KSR.x.*: exit, drop, and modf (call a native kamailio.cfg function by name)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.engine import flow_exports, normalize_result
from kemi_core.kemi.exports import KemiExport, ReturnKind, export

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


def modf(ctx: MsgContext, fname: str, *params: str) -> int:
    """Call the cfg function ``fname`` a loaded module registered (``core.cfg_functions``)
    with string parameters. Exported variadic: engines pass every argument after ``fname``."""
    fn = ctx.core.cfg_functions.get(fname)
    if fn is None:
        script_log.error("modf: no cfg function %r (is its module loaded?)", fname)
        return -1
    if not fn.min_args <= len(params) <= fn.max_args:
        script_log.error("modf: %s takes %d..%d parameters, %d given", fname, fn.min_args,
                         fn.max_args, len(params))
        return -1
    args: list[str | int] = []
    for pos, value in enumerate(params):
        if pos in fn.int_params:
            try:
                args.append(int(value))
            except (TypeError, ValueError):
                script_log.error("modf: %s parameter %d must be an integer, not %r", fname,
                                 pos + 1, value)
                return -1
        else:
            args.append(value if isinstance(value, str) else str(value))
    return normalize_result(fn.func(ctx, *args))


def exports() -> list[KemiExport]:
    return [
        *flow_exports(),
        export("x", "modf", modf, "s", ReturnKind.INT, variadic=True),
    ]
