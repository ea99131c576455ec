"""Formatting and writing: compiled formats cached by text, the module's settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from kemi_core.api import script_log
from kemi_core.sip import method_bit

if TYPE_CHECKING:
    from kemi_core.api import MsgContext

Formatter = Callable[["MsgContext"], str]

@attrs.define
class Settings:
    buf_size: int = 4096
    prefix: str = "<script>: "
    prefix_mode: int = 0
    long_format: int = 0
    methods_filter: int = -1
    prefix_fn: Formatter | None = None


settings = Settings()

def write(ctx: MsgContext, level: int, fmt: str, line_prefix: str = "") -> int:
    """Log ``fmt`` rendered for ``ctx`` at ``level``; 1 on success, -1 on a bad format."""
    if not script_log.isEnabledFor(level):
        return 1
    try:
        formatter = ctx.core.pv.format(fmt)
    except ValueError as exc:
        script_log.error("xlog: bad format %r: %s", fmt, exc)
        return -1
    text = formatter(ctx)
    if len(text) > settings.buf_size:
        text = text[:settings.buf_size]
    prefix = settings.prefix_fn(ctx) if settings.prefix_fn else settings.prefix
    script_log.log(level, "%s%s%s", prefix, line_prefix, text.rstrip("\r\n"))
    return 1


def method_filtered(ctx: MsgContext) -> bool:
    """xlogm(): True when methods_filter says to skip this message's method."""
    return bool(settings.methods_filter & method_bit(ctx.msg.method))


def level_name(level: int) -> str:
    return logging.getLevelName(level)
