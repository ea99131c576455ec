"""KSR.dbg / info / notice / warn / err / crit / log, and Kamailio's log levels for Python."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kemi_core.kemi.exports import KemiExport, ReturnKind, export

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

#: Levels Python lacks: Kamailio's L_NOTICE sits between INFO and WARNING, L_BUG and L_ALERT
#: above CRITICAL.
NOTICE = 25
BUG = 52
ALERT = 55
logging.addLevelName(NOTICE, "NOTICE")
logging.addLevelName(BUG, "BUG")
logging.addLevelName(ALERT, "ALERT")

#: Kamailio's numeric levels (the ``debug`` parameter, L_* constants) -> Python levels.
KAMAILIO_LEVELS: dict[int, int] = {
    -5: ALERT, -4: BUG, -3: logging.CRITICAL, -2: logging.CRITICAL, -1: logging.ERROR,
    0: logging.WARNING, 1: NOTICE, 2: logging.INFO, 3: logging.DEBUG,
}

#: Where script-initiated log lines go (KSR.info, xlog ...).
script_log = logging.getLogger("kemi.script")

#: ``extra=`` of the log record that reports a routing script's failure at run time (an error
#: raised in the script, a callback it names that does not exist), written with the script's
#: file:line and traceback: ``log.error("%s: ...", where, extra=SCRIPT_FAULT)``. Engines and
#: modules running script callbacks mark these; the kemi_router test fixture fails the test on
#: them (and on any error logged with an exception attached).
SCRIPT_FAULT: dict[str, object] = {"kemi_script_fault": True}


def is_script_fault(record: logging.LogRecord) -> bool:
    """Whether ``record`` reports a script failure (SCRIPT_FAULT) or an unexpected exception."""
    if getattr(record, "kemi_script_fault", False):
        return True
    return record.levelno >= logging.ERROR and bool(record.exc_info)

_KSR_LOG_LEVELS = {"dbg": logging.DEBUG, "info": logging.INFO, "notice": NOTICE,
                   "warn": logging.WARNING, "err": logging.ERROR, "crit": logging.CRITICAL}


def kamailio_level(level: int) -> int:
    """Python level for a Kamailio level number (clamped: < -5 is ALERT, > 3 is DEBUG)."""
    if level < -5:
        return ALERT
    return KAMAILIO_LEVELS.get(level, logging.DEBUG)


def emit(level: int, text: str) -> None:
    """Log one script line; the trailing newline scripts add is the logger's job here."""
    if script_log.isEnabledFor(level):
        script_log.log(level, "%s", text.rstrip("\r\n"))


def _maker(level: int, name: str) -> KemiExport:
    def log_fn(ctx: MsgContext, msg: str) -> None:
        emit(level, msg)
    log_fn.__doc__ = f"Write ``msg`` to the log at {logging.getLevelName(level)} level."
    return export("", name, log_fn, "s", ReturnKind.NONE)


def ksr_log(ctx: MsgContext, level: str, msg: str) -> None:
    """Write ``msg`` at ``level`` ("dbg", "info", "notice", "warn", "err", "crit"); any
    other level logs at "err", as Kamailio does."""
    emit(_KSR_LOG_LEVELS.get(level, logging.ERROR), msg)


def get_debug(ctx: MsgContext) -> int:
    """The core ``debug`` level (Kamailio's number, 3 = debug)."""
    return int(ctx.core.config.debug)


def exports() -> list[KemiExport]:
    return [
        *(_maker(lvl, name) for name, lvl in _KSR_LOG_LEVELS.items()),
        export("", "log", ksr_log, "ss", ReturnKind.NONE),
        export("", "get_debug", get_debug, "", ReturnKind.INT),
    ]
