"""acc's ``time_mode``: the extra value a record carries about its time, as Kamailio 5.6 writes
it (learned by running it: each mode, log and database).

* 0 (and any other value): nothing beyond the ``timestamp`` (log) / ``time`` (database).
* 1: seconds in ``time_attr`` and microseconds in ``time_exten``; the log shows only
  ``time_exten`` (its ``timestamp`` already is the seconds), the database both, as integers.
* 2: seconds.milliseconds in ``time_attr``: ``1796461405.133`` in the log, the full
  seconds.microseconds as a DOUBLE in the database.
* 3 / 4: ``time_format`` (strftime) of the local time / of UTC in ``time_attr``, as text.

In the log the field comes right after ``timestamp``; in the database ``time_attr`` and
``time_exten`` are column names (the table needs them, as Kamailio's documentation says).
"""

from __future__ import annotations

import time

import attrs

from kemi_core.api import db

DEFAULT_FORMAT = "%Y-%m-%d %H:%M:%S"


@attrs.frozen
class TimeMode:
    mode: int = 0
    attr: str = "time_attr"
    exten: str = "time_exten"
    format: str = DEFAULT_FORMAT

    def log_fields(self, t: float) -> list[tuple[str, str]]:
        """The fields after ``timestamp`` for a record made at ``t`` (seconds since the epoch)."""
        mode = self.mode
        if mode == 1:
            return [(self.exten, str(_micros(t)))]
        if mode == 2:
            return [(self.attr, f"{int(t)}.{_micros(t) // 1000:03d}")]
        if mode in (3, 4):
            return [(self.attr, self._formatted(t))]
        return []

    def db_values(self, t: float) -> dict[str, object]:
        """The extra columns of a row made at ``t``."""
        mode = self.mode
        if mode == 1:
            return {self.attr: int(t), self.exten: _micros(t)}
        if mode == 2:
            return {self.attr: int(t) + _micros(t) / 1_000_000}
        if mode in (3, 4):
            return {self.attr: self._formatted(t)}
        return {}

    def db_columns(self) -> list[db.Column]:
        """The layout of those columns."""
        mode = self.mode
        if mode == 1:
            return [db.Column(self.attr, db.ColumnType.INT),
                    db.Column(self.exten, db.ColumnType.INT)]
        if mode == 2:
            return [db.Column(self.attr, db.ColumnType.DOUBLE)]
        if mode in (3, 4):
            return [db.Column(self.attr, db.ColumnType.STRING, 128)]
        return []

    def _formatted(self, t: float) -> str:
        return time.strftime(self.format, time.localtime(t) if self.mode == 3 else time.gmtime(t))


def _micros(t: float) -> int:
    return min(int((t - int(t)) * 1_000_000), 999_999)
