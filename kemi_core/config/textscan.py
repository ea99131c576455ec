"""Low-level scanning of kamailio.cfg text: string literals, pseudo-variables, words."""

from __future__ import annotations

import re

#: One lexical step of the preprocessor; the alternatives cover every character.
SCAN = re.compile(r"""
    (?P<nl>\n) | (?P<quote>["']) | (?P<lc>\#|//) | (?P<bc>/\*) | (?P<pv>\$)
  | (?P<word>[A-Za-z0-9_]+) | (?P<other>[^\n"'#/$A-Za-z0-9_]+|/)
""", re.VERBOSE)
_PV_NAME = re.compile(r"[A-Za-z0-9_]*")


def module_name(raw: str) -> str:
    """``"modules/tm.so"`` / ``"tm.so"`` / ``"tm"`` -> ``"tm"``."""
    base = raw.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".so") else base


def string_end(text: str, pos: int) -> int:
    """Index just past the string literal opening at ``pos``, or -1 when unterminated."""
    quote = text[pos]
    i = pos + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    return -1


def pv_end(text: str, pos: int) -> int:
    """Index just past the pseudo-variable at ``pos`` (``$ru``, ``$hdr(X)``, ``$(ru{s.len})``).

    Parentheses are matched (strings inside them skipped); a PV never spans lines.
    """
    n = len(text)
    i = _PV_NAME.match(text, pos + 1).end()  # type: ignore[union-attr]
    while i < n and text[i] in "([":
        closer = ")" if text[i] == "(" else "]"
        depth = 0
        j = i
        while j < n and text[j] != "\n":
            c = text[j]
            if c in "\"'":
                end = string_end(text, j)
                if end < 0:
                    return j
                j = end
                continue
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth == 0 and c == closer:
                    j += 1
                    break
            j += 1
        else:
            return j  # unbalanced: stop at the line end, the parser will complain
        i = j
    return i
