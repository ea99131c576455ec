"""Tokens of a route block's body text (the part between the block's braces).

Positions are the config file's: the body's first character sits at (body_line, body_column)
of the RouteBlock, so every error names the line and column the operator wrote.
"""

from __future__ import annotations

import enum
import re

import attrs

from kemi_core.errors import ConfigError


class Tok(enum.Enum):
    IDENT = "identifier"
    INT = "number"
    STRING = "string"
    PV = "pseudo-variable"
    IP = "IP address"
    OP = "operator"
    EOF = "end of block"


@attrs.frozen
class Token:
    kind: Tok
    text: str  # source text (for STRING: the value after escapes)
    value: object  # int for INT, str otherwise
    line: int
    column: int


# Longest first: the lexer takes the first that matches.
_OPERATORS = (
    "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", ":=", "<<", ">>",
    "=", "<", ">", "!", "+", "-", "*", "/", "%", "|", "&", "^", "~",
    "(", ")", "{", "}", ",", ";", ":",
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_HEX_RE = re.compile(r"0[xX][0-9a-fA-F]+")
_DEC_RE = re.compile(r"[0-9]+")
_IPV4_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[0-9]{1,2})?")
_IPV6_BRACKET_RE = re.compile(r"\[[0-9a-fA-F:.]+\](?:/[0-9]{1,3})?")
# A bare IPv6 address needs at least two colons so `case 1:` stays a number and a colon.
_IPV6_BARE_RE = re.compile(r"(?:[0-9][0-9a-fA-F]*|):[0-9a-fA-F]*:[0-9a-fA-F:.]*(?:/[0-9]{1,3})?")
_PV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


class Lexer:
    """Turns body text into tokens; ``tokens()`` raises ConfigError at the first bad char."""

    def __init__(self, text: str, file: str, line: int = 1, column: int = 1) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        self.line = line
        self.col = column

    # ---- helpers --------------------------------------------------------------------
    def _error(self, reason: str, line: int | None = None, col: int | None = None) -> ConfigError:
        return ConfigError(reason, self.file, line if line is not None else self.line,
                           col if col is not None else self.col)

    def _advance(self, n: int) -> str:
        chunk = self.text[self.pos:self.pos + n]
        for ch in chunk:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += n
        return chunk

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r\n\f\v":
                self._advance(1)
            elif ch == "#" or text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self._advance((len(text) if end < 0 else end) - self.pos)
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self._error("unterminated /* comment")
                self._advance(end + 2 - self.pos)
            else:
                return

    # ---- token readers --------------------------------------------------------------
    def _read_string(self, quote: str) -> str:
        line, col = self.line, self.col
        self._advance(1)
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self._error("unterminated string", line, col)
            ch = text[self.pos]
            if ch == quote:
                self._advance(1)
                return "".join(out)
            if ch == "\\" and self.pos + 1 < len(text):
                nxt = text[self.pos + 1]
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                elif nxt == "\n":
                    pass  # backslash-newline continues the string
                else:
                    # Unknown escapes stay as written: regexes like "^(\+|00)" need them.
                    out.append("\\" + nxt)
                self._advance(2)
                continue
            out.append(ch)
            self._advance(1)

    def _balanced(self, start: int) -> int:
        """Index just past the ')' matching the '(' at ``start``; -1 when unbalanced."""
        depth = 0
        text = self.text
        i = start
        while i < len(text):
            ch = text[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return i + 1
            elif ch == "\n":
                return -1
            i += 1
        return -1

    def _read_pv(self) -> str:
        """``$name``, ``$name(inner)`` or ``$(name(inner)[idx]{transformation})``."""
        text = self.text
        start = self.pos
        i = start + 1
        if i < len(text) and text[i] == "(":
            end = self._balanced(i)
            if end < 0:
                raise self._error("unbalanced parenthesis in pseudo-variable")
            return self._advance(end - start)
        m = _PV_NAME_RE.match(text, i)
        if not m:
            raise self._error("'$' must start a pseudo-variable name")
        i = m.end()
        if i < len(text) and text[i] == "(":
            end = self._balanced(i)
            if end < 0:
                raise self._error("unbalanced parenthesis in pseudo-variable")
            i = end
        return self._advance(i - start)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        text = self.text
        while True:
            self._skip_space_and_comments()
            line, col = self.line, self.col
            if self.pos >= len(text):
                out.append(Token(Tok.EOF, "", None, line, col))
                return out
            ch = text[self.pos]
            if ch in "\"'":
                value = self._read_string(ch)
                out.append(Token(Tok.STRING, value, value, line, col))
                continue
            if ch == "$":
                spec = self._read_pv()
                out.append(Token(Tok.PV, spec, spec, line, col))
                continue
            m = _IPV4_RE.match(text, self.pos) or _IPV6_BRACKET_RE.match(text, self.pos)
            if m is None and (ch.isdigit() or ch == ":"):
                m = _IPV6_BARE_RE.match(text, self.pos)
            if m is not None and not _continues_word(text, m.end()):
                ip = self._advance(m.end() - self.pos)
                out.append(Token(Tok.IP, ip, ip, line, col))
                continue
            if ch.isdigit():
                m = _HEX_RE.match(text, self.pos) or _DEC_RE.match(text, self.pos)
                assert m is not None
                if _continues_word(text, m.end()):
                    raise self._error(f"malformed number {text[self.pos:m.end() + 1]!r}")
                num = self._advance(m.end() - self.pos)
                out.append(Token(Tok.INT, num, int(num, 0), line, col))
                continue
            m = _IDENT_RE.match(text, self.pos)
            if m is not None:
                word = self._advance(m.end() - self.pos)
                # `msg:len` is one keyword in Kamailio's grammar.
                if word == "msg" and text.startswith(":len", self.pos):
                    word += self._advance(4)
                out.append(Token(Tok.IDENT, word, word, line, col))
                continue
            for op in _OPERATORS:
                if text.startswith(op, self.pos):
                    self._advance(len(op))
                    out.append(Token(Tok.OP, op, op, line, col))
                    break
            else:
                raise self._error(f"unexpected character {ch!r}")


def _continues_word(text: str, end: int) -> bool:
    return end < len(text) and (text[end].isalnum() or text[end] == "_")


def tokenize(text: str, file: str, line: int = 1, column: int = 1) -> list[Token]:
    return Lexer(text, file, line, column).tokens()
