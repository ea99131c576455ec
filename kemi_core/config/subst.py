"""``#!subst "/regex/replacement/flags"`` rules, applied to the config's string literals."""

from __future__ import annotations

import re

import attrs


class SubstSyntaxError(ValueError):
    """The expression is not ``<d>regex<d>replacement<d>flags`` with a delimiter ``<d>``."""


@attrs.frozen
class SubstRule:
    pattern: re.Pattern[str]
    #: replacement split into literal text and group numbers (``\\1`` in the config).
    parts: tuple[str | int, ...]
    count: int  # 0 = every match (flag g), 1 = the first only
    name: str  # the regex as written; #!substdef defines it as an ID

    def apply(self, text: str) -> str:
        return self.pattern.sub(self._expand, text, count=self.count)

    def _expand(self, m: re.Match[str]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, int):
                out.append(m.group(part) or "")
            else:
                out.append(part)
        return "".join(out)

    @property
    def replacement(self) -> str:
        """The replacement as plain text (what #!substdef defines the name to)."""
        return "".join(p if isinstance(p, str) else f"\\{p}" for p in self.parts)


def split_sed(expr: str) -> list[str]:
    """``<d>regex<d>replacement<d>flags`` -> its three fields, split on the (unescaped)
    delimiter ``<d>``, the expression's first character (also used by textops' subst)."""
    if len(expr) < 2:
        raise SubstSyntaxError("empty expression")
    delim = expr[0]
    if delim.isalnum() or delim.isspace() or delim == "\\":
        raise SubstSyntaxError(f"bad delimiter {delim!r}")
    fields: list[str] = []
    cur: list[str] = []
    i = 1
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr) and expr[i + 1] == delim:
            cur.append(delim)
            i += 2
            continue
        if c == "\\" and i + 1 < len(expr):
            cur.append(expr[i:i + 2])
            i += 2
            continue
        if c == delim:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    if len(fields) != 3:
        raise SubstSyntaxError(f"expected {delim}regex{delim}replacement{delim}flags")
    return fields


def _replacement_parts(repl: str, groups: int) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    lit: list[str] = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\" and i + 1 < len(repl):
            nxt = repl[i + 1]
            if nxt.isdigit():
                if int(nxt) > groups:
                    raise SubstSyntaxError(f"replacement refers to group {nxt}, regex has {groups}")
                if lit:
                    parts.append("".join(lit))
                    lit = []
                parts.append(int(nxt))
            else:
                lit.append(nxt)
            i += 2
            continue
        lit.append(c)
        i += 1
    if lit:
        parts.append("".join(lit))
    return tuple(parts)


def parse_subst(expr: str) -> SubstRule:
    """Parse ``/regex/replacement/flags`` (flags: ``i`` ignore case, ``g`` every match)."""
    regex, repl, flags = split_sed(expr)
    if not regex:
        raise SubstSyntaxError("empty regex")
    bad = set(flags) - set("ig")
    if bad:
        raise SubstSyntaxError(f"unknown flag(s) {''.join(sorted(bad))!r} (allowed: i, g)")
    try:
        pattern = re.compile(regex, re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        raise SubstSyntaxError(f"bad regex {regex!r}: {exc}") from None
    parts = _replacement_parts(repl, pattern.groups)
    return SubstRule(pattern, parts, 0 if "g" in flags else 1, regex)
