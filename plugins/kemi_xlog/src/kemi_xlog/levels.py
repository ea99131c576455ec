"""xlog's level argument: "L_ERR" style names (the third letter decides, as in Kamailio) or a
pseudo-variable holding Kamailio's level number."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.api import ALERT, BUG, NOTICE, PvError, kamailio_level

if TYPE_CHECKING:
    from kemi_core.api import MsgContext

_BY_LETTER = {"A": ALERT, "B": BUG, "C": logging.CRITICAL, "E": logging.ERROR,
              "W": logging.WARNING, "N": NOTICE, "I": logging.INFO, "D": logging.DEBUG}

LevelFn = Callable[["MsgContext"], int]


@functools.lru_cache(maxsize=256)
def parse_level(text: str) -> LevelFn:
    """Compile a level argument (cached by text); raises ValueError for an unknown name. A
    $pv is compiled by the message's core (each core has its own variables)."""
    text = text.strip()
    if text.startswith("$"):
        def from_pv(ctx: MsgContext) -> int:
            try:
                value = ctx.core.pv.spec(text).get(ctx)
            except PvError as exc:
                raise ValueError(f"xlog level {text!r}: {exc}")
            try:
                return kamailio_level(int(value)) if value is not None else logging.ERROR
            except ValueError:
                return logging.ERROR
        return from_pv
    level = _BY_LETTER.get(text[2:3].upper()) if text[:2].upper() == "L_" else None
    if level is None:
        raise ValueError(f"unknown xlog level {text!r} (L_ALERT, L_BUG, L_CRIT, L_ERR, "
                         f"L_WARN, L_NOTICE, L_INFO, L_DBG or a $pv)")
    return lambda ctx: level
