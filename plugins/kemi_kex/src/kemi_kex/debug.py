"""setdebug / resetdebug: this process's log level, in Kamailio's numbers (-5 .. 3)."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext, kamailio_level

#: The logger every kemi component logs under (kemi.core, kemi.script, kemi.textops ...).
ROOT = logging.getLogger("kemi")


def setdebug(ctx: MsgContext, level: int) -> int:
    """Set this process's log level (Kamailio numbers: 3 debug, 2 info, 0 warning, -1 error)."""
    ROOT.setLevel(kamailio_level(int(level)))
    return 1


def resetdebug(ctx: MsgContext) -> int:
    """Back to the core ``debug`` parameter's level."""
    ROOT.setLevel(kamailio_level(int(ctx.core.config.debug)))
    return 1
