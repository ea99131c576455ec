"""Log lines about bad input, at most one per kind per interval (no log amplification).

Anyone who can send a datagram can make the server log: each kind of complaint (a bad
message, a refused connection) is written at most once per ``interval`` seconds, and the
next line says how many were not written in between.
"""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def log(self, level: int, kind: str, fmt: str, *args: object) -> bool:
        """Log ``fmt % args`` unless ``kind`` was logged less than ``interval`` ago; True
        when the line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            fmt += " (%d more like it not logged)"
            args = (*args, skipped)
        self.logger.log(level, fmt, *args)
        return True

    def warning(self, kind: str, fmt: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, fmt, *args)

    def info(self, kind: str, fmt: str, *args: object) -> bool:
        return self.log(logging.INFO, kind, fmt, *args)

    def error(self, kind: str, fmt: str, *args: object) -> bool:
        return self.log(logging.ERROR, kind, fmt, *args)


def brief_error(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` of the innermost frame: enough to find a
    bug, in one line (a traceback per bad datagram would let anyone flood the log)."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        where = f" (at {code.co_filename}:{tb.tb_lineno} in {code.co_name})"
        tb = tb.tb_next
    text = str(exc).replace("\n", " ")[:300]
    return f"{type(exc).__name__}: {text}{where}"
