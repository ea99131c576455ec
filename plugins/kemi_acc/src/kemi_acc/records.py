"""Accounting records and their writers, sans-IO.

A record is what Kamailio's acc module accounts for one request: the core fields (method,
From/To tags, Call-ID, reply code and reason, time), the ``*_extra`` values and the call legs
(``multi_leg_info``, see ``legs``). Writers get
records and a kind ("acc": a transaction accounted or acc_*_request, "missed": a call missed);
``LogWriter`` prints Kamailio's syslog form. A database writer (the ``acc`` and
``missed_calls`` tables) is another ``Writer`` with the same input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from kemi_acc.timemode import TimeMode

#: What a record is, and the log text Kamailio prints before it.
KIND_TEXT = {"acc": "transaction answered", "request": "request accounted",
             "missed": "call missed"}


@attrs.frozen
class AccRecord:
    method: str
    from_tag: str
    to_tag: str
    call_id: str
    code: str
    reason: str
    time: float
    extra: tuple[tuple[str, str], ...] = ()
    #: the call legs: (name, value or None) per leg AVP, per leg
    legs: tuple[tuple[tuple[str, object], ...], ...] = ()

    def fields(self, time_mode: TimeMode | None = None) -> list[tuple[str, str]]:
        """(name, value) in Kamailio's log order: the timestamp and the ``time_mode`` field,
        the other core fields, the extra values, then every leg's values."""
        out = [("timestamp", str(int(self.time)))]
        if time_mode is not None:
            out += time_mode.log_fields(self.time)
        out += [("method", self.method), ("from_tag", self.from_tag), ("to_tag", self.to_tag),
                ("call_id", self.call_id), ("code", self.code), ("reason", self.reason)]
        out += self.extra
        for leg in self.legs:
            out += [(name, "" if value is None else str(value)) for name, value in leg]
        return out


class Writer(Protocol):
    def write(self, record: AccRecord, kind: str) -> bool: ...


class LogWriter:
    """Kamailio's log backend: ``ACC: transaction answered: timestamp=...;method=...``."""

    def __init__(self, logger: logging.Logger, level: int, time_mode: TimeMode | None = None) -> None:
        self.logger = logger
        self.level = level
        self.time_mode = time_mode

    def format(self, record: AccRecord, kind: str) -> str:
        body = ";".join(f"{name}={value}" for name, value in record.fields(self.time_mode))
        return f"ACC: {KIND_TEXT[kind]}: {body}"

    def write(self, record: AccRecord, kind: str) -> bool:
        self.logger.log(self.level, "%s", self.format(record, kind))
        return True


_EXTRA_ITEM = re.compile(r"\s*([^=;\s]+)\s*=\s*([^;]+?)\s*(?:;|$)")


def parse_extra(text: str) -> list[tuple[str, str]]:
    """``name=$pv;name2=$pv2`` -> [(name, pv spec)]; a ValueError for a malformed list."""
    items: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _EXTRA_ITEM.match(text, pos)
        if m is None or not m.group(2).startswith("$"):
            raise ValueError(f"bad extra definition at {text[pos:]!r} (name=$pv expected)")
        items.append((m.group(1), m.group(2)))
        pos = m.end()
    return items


def extra_values(items: list[tuple[str, str]], read: Callable[[str], Any]) -> tuple[tuple[str, str], ...]:
    """Evaluate the extra PVs with ``read(spec)``; a missing value is written empty."""
    out = []
    for name, spec in items:
        try:
            value = read(spec)
        except ValueError:
            value = None
        out.append((name, "" if value is None else str(value)))
    return tuple(out)
