"""Tokens of the preprocessed config text outside route blocks, with their file:line."""

from __future__ import annotations

import bisect
import re

import attrs

from kemi_core.config.preproc import Source
from kemi_core.config.textscan import string_end
from kemi_core.errors import ConfigError

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>["'])
  | (?P<int>0[xX][0-9a-fA-F]+|\d+)(?![A-Za-z0-9_])
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>.)
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "\\": "\\", '"': '"', "'": "'"}


def decode_string(literal: str) -> str:
    """The value of a string literal: escapes resolved, a backslash-newline joins lines."""
    inner = literal[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner):
            nxt = inner[i + 1]
            if nxt == "\n":
                pass
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                out.append(c + nxt)  # unknown escape (a regex's \d): kept as written
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@attrs.frozen
class Token:
    kind: str  # "id" | "int" | "str" | "op" | "eof"
    text: str  # as written
    value: str | int
    pos: int  # offset in Source.text
    end: int


class Lexer:
    """A resumable lexer over Source.text: the parser skips route bodies by moving ``pos``."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.text = src.text
        self.pos = 0
        self._starts = [0]
        for line in src.lines[:-1]:
            self._starts.append(self._starts[-1] + len(line) + 1)

    # ---- positions ----------------------------------------------------------------------
    def line_index(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos) - 1

    def where(self, pos: int) -> tuple[str, int, int]:
        """(file, line, column) of an offset."""
        i = self.line_index(pos)
        file, line = self.src.origins[i] if self.src.origins else ("<config>", 1)
        return file, line, pos - self._starts[i] + 1

    def error(self, reason: str, pos: int) -> ConfigError:
        file, line, col = self.where(pos)
        return ConfigError(reason, file, line, col)

    # ---- tokens -------------------------------------------------------------------------
    def next(self) -> Token:
        text, n = self.text, len(self.text)
        while self.pos < n:
            m = _TOKEN.match(text, self.pos)
            assert m is not None
            kind, start = m.lastgroup, self.pos
            if kind == "ws":
                self.pos = m.end()
                continue
            if kind == "str":
                end = string_end(text, start)
                if end < 0:
                    raise self.error("unterminated string (missing closing quote)", start)
                self.pos = end
                lit = text[start:end]
                return Token("str", lit, decode_string(lit), start, end)
            self.pos = m.end()
            tok = m.group()
            if kind == "int":
                return Token("int", tok, int(tok, 16) if tok[:2] in ("0x", "0X") else int(tok),
                             start, self.pos)
            return Token(kind or "op", tok, tok, start, self.pos)
        return Token("eof", "", "", n, n)

    def peek(self) -> Token:
        saved = self.pos
        try:
            return self.next()
        finally:
            self.pos = saved

    def same_line(self, a: int, b: int) -> bool:
        return self.line_index(a) == self.line_index(b)


def describe(t: Token) -> str:
    """A token as error messages name it."""
    if t.kind == "eof":
        return "end of file"
    if t.kind == "str":
        return f"string {t.text}"
    return f"'{t.text}'"
