"""Accounting records and their writers, sans-IO.

A record is what Kamailio's acc module accounts for one request: the core fields (method,
From/To tags, Call-ID, reply code and reason, time) and the ``*_extra`` values. Writers get
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

    def fields(self) -> list[tuple[str, str]]:
        """(name, value) in Kamailio's order: the core columns, then the extra ones."""
        core = [("timestamp", str(int(self.time))), ("method", self.method),
                ("from_tag", self.from_tag), ("to_tag", self.to_tag), ("call_id", self.call_id),
                ("code", self.code), ("reason", self.reason)]
        return core + list(self.extra)


class Writer(Protocol):
    def write(self, record: AccRecord, kind: str) -> bool: ...


class LogWriter:
    """Kamailio's log backend: ``ACC: transaction answered: timestamp=...;method=...``."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger = logger
        self.level = level

    def format(self, record: AccRecord, kind: str) -> str:
        body = ";".join(f"{name}={value}" for name, value in record.fields())
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
