"""sed-like ``/re/repl/flags`` expressions (textops subst*, Kamailio's subst_parser).

The first character is the delimiter; ``\\<delim>`` escapes it. In ``repl``, ``\\0``..``\\9`` are
match groups, ``\\u`` the Request-URI, ``\\n \\r \\t \\\\`` the usual escapes, and pseudo-variables
are evaluated per call. Flags: ``i`` ignore case, ``g`` every match, ``s`` ``.`` matches newline
and ``^``/``$`` anchor the whole text (without ``s`` they anchor lines, POSIX REG_NEWLINE).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import attrs

from kemi_core.api import MsgContext, SubstSyntaxError, split_sed
from kemi_textops.posix_re import compile_re
from kemi_textops.pvbridge import expand


class SubstError(ValueError):
    """The expression is malformed."""


@attrs.frozen
class Subst:
    regex: re.Pattern[str]
    repl: tuple[str | int, ...]  # str: literal text (may hold PVs); int >= 0: group; -1: R-URI
    glob: bool

    def render_fn(self, ctx: MsgContext) -> Callable[[re.Match[str]], str]:
        """The per-match replacement builder for this message (PVs evaluated once)."""
        parts = [expand(ctx, p) if isinstance(p, str) else p for p in self.repl]
        ruri = ctx.msg.ruri if ctx.msg.is_request else ""

        def one(m: re.Match[str]) -> str:
            out: list[str] = []
            for p in parts:
                if isinstance(p, str):
                    out.append(p)
                elif p < 0:
                    out.append(ruri)
                elif p <= m.re.groups:
                    out.append(m.group(p) or "")
            return "".join(out)

        return one

    def apply(self, ctx: MsgContext, text: str) -> tuple[str, int]:
        """(new text, number of replacements)."""
        return self.regex.subn(self.render_fn(ctx), text, count=0 if self.glob else 1)


_ESC = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}


def _split(expr: str) -> list[str]:
    try:
        return split_sed(expr)
    except SubstSyntaxError as exc:
        raise SubstError(f"subst expression {expr!r}: {exc}")


def _repl_parts(repl: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    lit: list[str] = []
    i = 0
    while i < len(repl):
        c = repl[i]
        if c == "\\" and i + 1 < len(repl):
            nxt = repl[i + 1]
            if nxt.isdigit() or nxt == "u":
                if lit:
                    parts.append("".join(lit))
                    lit = []
                parts.append(int(nxt) if nxt.isdigit() else -1)
            else:
                lit.append(_ESC.get(nxt, nxt))
            i += 2
            continue
        lit.append(c)
        i += 1
    if lit:
        parts.append("".join(lit))
    return tuple(parts)


@functools.lru_cache(maxsize=256)
def parse_subst(expr: str) -> Subst:
    """Parse and compile once (cached); raises SubstError / re.error."""
    pattern, repl, flags = _split(expr)
    bad = set(flags) - set("igs")
    if bad:
        raise SubstError(f"unknown subst flags {''.join(sorted(bad))!r} in {expr!r}")
    reflags = re.IGNORECASE if "i" in flags else 0
    reflags |= re.DOTALL if "s" in flags else re.MULTILINE
    return Subst(compile_re(pattern, reflags), _repl_parts(repl), "g" in flags)
