"""Pseudo-variables for textops: expanding ``$var(x)`` in text and writing result variables."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext

log = logging.getLogger("kemi.textops")


def expand(ctx: MsgContext, text: str) -> str:
    """Text with its pseudo-variables evaluated; text that is no valid format stays as is."""
    if "$" not in text:
        return text
    try:
        return ctx.core.pv.format(text)(ctx)
    except ValueError:  # PvError: a '$' that starts no known variable
        return text


def assign(ctx: MsgContext, spec: str, value: str | int | None) -> bool:
    """``spec = value``; False (logged) when spec is not a writable variable."""
    from kemi_core.api import set_pv

    try:
        set_pv(ctx, spec, value)
    except ValueError as exc:
        log.error("textops: cannot assign %s: %s", spec, exc)
        return False
    return True
