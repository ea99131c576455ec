"""The trusted table (allow_trusted), sans-IO: rows in, matching out.

A request is trusted when a row has its source address (compared as text, as in Kamailio),
its transport (or ``any``; ``none`` never matches) and, when set, a ``from_pattern`` regular
expression matching its From URI and a ``ruri_pattern`` matching its Request-URI. Rows are
tried by descending priority.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

log = logging.getLogger("kemi.permissions")


@attrs.frozen
class TrustedRow:
    src_ip: str
    proto: str
    from_pattern: str | None
    ruri_pattern: str | None
    tag: str | None
    priority: int


def make_trusted(raw: Mapping[str, Any]) -> TrustedRow:
    def opt(name: str) -> str | None:
        v = raw.get(name)
        return None if v is None or v == "" else str(v)

    return TrustedRow(str(raw.get("src_ip") or ""), str(raw.get("proto") or "any").lower(),
                      opt("from_pattern"), opt("ruri_pattern"), opt("tag"),
                      int(raw.get("priority") or 0))


class TrustedTable:
    def __init__(self, rows: Iterable[TrustedRow]) -> None:
        self.rows = sorted(rows, key=lambda r: -r.priority)
        self._rx: dict[str, re.Pattern[str] | None] = {}

    def _search(self, pattern: str | None, text: str) -> bool:
        if pattern is None:
            return True
        rx = self._rx.get(pattern, re)
        if rx is re:
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                log.error("allow_trusted: bad pattern %r: %s", pattern, exc)
                rx = None
            self._rx[pattern] = rx
        return rx is not None and rx.search(text) is not None  # type: ignore[union-attr]

    def matches(self, src_ip: str, proto: str, from_uri: str, ruri: str,
                all_matches: bool = False) -> list[TrustedRow]:
        proto = proto.lower()
        out = []
        for r in self.rows:
            if r.src_ip != src_ip or r.proto == "none":
                continue
            if r.proto not in ("any", proto):
                continue
            if self._search(r.from_pattern, from_uri) and self._search(r.ruri_pattern, ruri):
                out.append(r)
                if not all_matches:
                    break
        return out
