"""xlog-style format strings: text mixed with pseudo-variables, compiled once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.pv.registry import PvLookup, lookup_builtin
from kemi_core.pv.spec import scan_pv

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

#: What xlog prints for a $null value (Kamailio prints "<null>").
NULL_TEXT = "<null>"


def compile_format(fmt: str, lookup: PvLookup = lookup_builtin) -> Callable[[MsgContext], str]:
    """``"r-uri $ru from $si:$sp$$"`` -> ``f(ctx) -> str``; ``$$`` is a literal ``$``.

    Unknown pseudo-variables and malformed specs raise PvError (a ValueError) here, at
    compile time, never when a message is logged.
    """
    parts: list[str | Callable[[MsgContext], object]] = []
    text: list[str] = []
    pos = 0
    n = len(fmt)
    while pos < n:
        dollar = fmt.find("$", pos)
        if dollar < 0:
            text.append(fmt[pos:])
            break
        text.append(fmt[pos:dollar])
        if fmt[dollar + 1:dollar + 2] == "$":
            text.append("$")
            pos = dollar + 2
            continue
        spec, pos = scan_pv(fmt, dollar, lookup)
        if text:
            parts.append("".join(text))
            text = []
        parts.append(spec.get)
    if text and "".join(text):
        parts.append("".join(text))
    if not parts:
        return lambda ctx: ""
    if len(parts) == 1 and isinstance(parts[0], str):
        const = parts[0]
        return lambda ctx: const
    frozen = tuple(parts)

    def render(ctx: MsgContext) -> str:
        out: list[str] = []
        for part in frozen:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part(ctx)
                out.append(NULL_TEXT if value is None else str(value))
        return "".join(out)
    return render
