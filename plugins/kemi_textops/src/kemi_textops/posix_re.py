"""POSIX extended regular expressions (what Kamailio's regcomp takes) run on Python's ``re``.

The two dialects agree on nearly everything scripts write; the translation covers bracket
classes (``[[:digit:]]``), which Python lacks. Compiled patterns are cached because scripts pass
the same few literals for every message.
"""

from __future__ import annotations

import functools
import re

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\r\n\v\f", "blank": r" \t", "xdigit": "0-9A-Fa-f", "cntrl": r"\x00-\x1f\x7f",
    "punct": r"!-/:-@\[-`{-~", "print": r" -~", "graph": r"!-~", "word": r"\w",
}

#: Kamailio compiles most textops patterns with REG_EXTENDED|REG_ICASE|REG_NEWLINE.
DEFAULT_FLAGS = re.IGNORECASE | re.MULTILINE


def translate(pattern: str) -> str:
    """POSIX ERE text -> Python pattern text (bracket classes expanded)."""
    if "[:" not in pattern:
        return pattern
    return re.sub(r"\[:([a-z]+):\]", lambda m: _CLASSES.get(m.group(1), m.group(0)), pattern)


@functools.lru_cache(maxsize=512)
def compile_re(pattern: str, flags: int = DEFAULT_FLAGS) -> re.Pattern[str]:
    """Compile (cached); raises ``re.error`` for a bad pattern."""
    return re.compile(translate(pattern), flags)
