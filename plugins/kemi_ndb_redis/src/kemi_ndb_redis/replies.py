"""Redis replies as Kamailio's ndb_redis shows them through ``$redis(name=>key)``.

Types are hiredis's numbers: 1 string, 2 array, 3 integer, 4 nil, 5 status, 6 error. ``value``
is the string or integer (nil for status, error, nil and arrays); ``info`` is the text of a
status, an error or a string; ``size`` the element count of an array; ``type[n]``/``value[n]``
its elements, and ``value[n]=>key`` reaches into nested arrays (MULTI/EXEC).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

STRING, ARRAY, INTEGER, NIL, STATUS, ERROR = 1, 2, 3, 4, 5, 6


class Status(bytes):
    """A simple-string (status) reply, kept apart from bulk strings by our parser."""


class ErrorReply(str):
    """An error reply's text."""


@attrs.define
class Reply:
    type: int
    value: Any = None  # str | int | None | list[Reply]

    @classmethod
    def of(cls, raw: Any) -> Reply:
        if raw is None:
            return cls(NIL)
        if isinstance(raw, ErrorReply | Exception):
            return cls(ERROR, str(raw))
        if isinstance(raw, Status):
            return cls(STATUS, raw.decode("utf-8", "replace"))
        if isinstance(raw, bool):
            return cls(INTEGER, int(raw))
        if isinstance(raw, int):
            return cls(INTEGER, raw)
        if isinstance(raw, bytes | bytearray):
            return cls(STRING, bytes(raw).decode("utf-8", "replace"))
        if isinstance(raw, str):
            return cls(STRING, raw)
        if isinstance(raw, list | tuple):
            return cls(ARRAY, [cls.of(x) for x in raw])
        return cls(STRING, str(raw))

    def key(self, name: str) -> Any:
        """``type``, ``value``, ``info`` or ``size`` of this reply."""
        if name == "type":
            return self.type
        if name == "value":
            return self.value if self.type in (STRING, INTEGER) else None
        if name == "info":
            return self.value if self.type in (STRING, STATUS, ERROR) else None
        if name == "size":
            return len(self.value) if self.type == ARRAY else None
        return None


_STEP = re.compile(r"^\s*(type|value|info|size)\s*(?:\[\s*(\d+)\s*\])?\s*$")


def parse_path(text: str) -> tuple[str, list[tuple[str, int | None]]]:
    """``r=>value[0]=>type[1]`` -> ("r", [("value", 0), ("type", 1)]); ValueError if bad."""
    name, *steps = [p.strip() for p in text.split("=>")]
    if not name or not steps:
        raise ValueError(f"$redis({text}): expected name=>key")
    out: list[tuple[str, int | None]] = []
    for step in steps:
        m = _STEP.match(step)
        if not m:
            raise ValueError(f"$redis({text}): unknown key {step!r}")
        out.append((m.group(1), int(m.group(2)) if m.group(2) is not None else None))
    return name, out


def lookup(reply: Reply | None, steps: list[tuple[str, int | None]]) -> Any:
    """Walk ``steps`` from ``reply``: an indexed step selects an array element."""
    current = reply
    for i, (key, index) in enumerate(steps):
        if current is None:
            return None
        if index is not None:
            if current.type != ARRAY or index >= len(current.value):
                return None
            element: Reply = current.value[index]
            if i == len(steps) - 1:
                return element.key(key)
            current = element
            continue
        if i == len(steps) - 1:
            return current.key(key)
        return None  # only indexed steps may go deeper
    return None
