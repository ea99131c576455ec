"""Logging set-up: Kamailio's ``debug`` levels mapped onto Python logging, to stderr."""

from __future__ import annotations

import logging
import sys

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

#: Kamailio's numeric levels (L_ALERT -5 ... L_DBG 3) -> Python levels.
KAMAILIO_LEVELS = {-5: logging.CRITICAL, -4: logging.CRITICAL, -3: logging.CRITICAL,
                   -2: logging.CRITICAL, -1: logging.ERROR, 0: logging.WARNING, 1: NOTICE,
                   2: logging.INFO, 3: logging.DEBUG}


def python_level(debug: int) -> int:
    """The Python logging level that shows what Kamailio's ``debug=N`` shows."""
    if debug >= 3:
        return logging.DEBUG
    return KAMAILIO_LEVELS.get(debug, logging.CRITICAL)


def setup_logging(debug: int, prefix: str | None = None, stream: object = None) -> None:
    """Log to stderr in Kamailio's style: `` pid LEVEL: <component> message``."""
    fmt = (prefix or "") + " %(process)d %(levelname)s: <%(name)s> %(message)s"
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(python_level(debug))
