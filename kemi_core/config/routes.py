"""Route blocks: the header (kind and [NAME]) and the body text between balanced braces.

The body is kept as text for the native engine; braces inside strings do not count (comments
are already blanked by the preprocessor). The block remembers where its body begins and the
file:line of each of its lines.
"""

from __future__ import annotations

import re

from kemi_core.config.lexer import Lexer, Token, describe
from kemi_core.config.model import RouteBlock
from kemi_core.config.textscan import string_end

_QUOTE_OR_BRACE = re.compile(r"[\"'{}]")
#: Kinds that take no [NAME]; and the unnamed (or [0]) forms that mean the main routes.
_UNNAMED_ONLY = ("request_route", "reply_route")
_MAIN_ALIAS = {"route": "request_route", "onreply_route": "reply_route"}


def read_route_block(lx: Lexer, kw: Token) -> RouteBlock:
    """Read ``kind[NAME] { ... }`` starting after the keyword ``kw``; leaves lx after the '}'."""
    kind = str(kw.value)
    text = lx.text
    name: str | None = None
    t = lx.next()
    if t.kind == "op" and t.text == "[":
        close = text.find("]", t.end)
        if close < 0 or "\n" in text[t.end:close] or "{" in text[t.end:close]:
            raise lx.error(f"{kind}: missing ']' after the block name", t.pos)
        name = text[t.end:close].strip()
        if len(name) >= 2 and name[0] in "\"'" and name[-1] == name[0]:
            name = name[1:-1]
        if not name:
            raise lx.error(f"{kind}: empty block name", t.pos)
        lx.pos = close + 1
        t = lx.next()
    if not (t.kind == "op" and t.text == "{"):
        raise lx.error(f"expected '{{' to open the {kind} block, found {describe(t)}", t.pos)
    if kind in _UNNAMED_ONLY and name is not None:
        raise lx.error(f"{kind} takes no name", kw.pos)
    if kind in _MAIN_ALIAS and name in (None, "0"):
        kind, name = _MAIN_ALIAS[kind], None
    if kind == "event_route" and name is None:
        raise lx.error("event_route needs a name: event_route[module:event]", kw.pos)
    close = match_brace(lx, t.pos)
    if close < 0:
        raise lx.error(f"unterminated {kind} block: missing '}}'", t.pos)
    lx.pos = close + 1
    file, line, _ = lx.where(kw.pos)
    _, body_line, body_col = lx.where(t.end)
    first, last = lx.line_index(t.end), lx.line_index(close)
    return RouteBlock(file, line, kind, name, text[t.end:close], body_line, body_col,
                      list(lx.src.origins[first:last + 1]))


def match_brace(lx: Lexer, open_pos: int) -> int:
    """Offset of the '}' closing the '{' at ``open_pos``, or -1."""
    text, depth, i = lx.text, 0, open_pos
    while True:
        m = _QUOTE_OR_BRACE.search(text, i)
        if m is None:
            return -1
        c, i = m.group(), m.start()
        if c in "\"'":
            end = string_end(text, i)
            if end < 0:
                raise lx.error("unterminated string (missing closing quote)", i)
            i = end
            continue
        depth += 1 if c == "{" else -1
        if depth == 0:
            return i
        i += 1
