"""Value rules of the native language: int/str coercion, comparison, truth, regex matching.

Kamailio values are ints, strings or null (None here). Conversions follow Kamailio's rvalue
rules closely enough for routing scripts; where Kamailio logs a conversion error and treats
the expression as failed, kemi uses 0 / no match instead of stopping the route.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kemi_core.caching import bounded_cache

_POSIX_CLASSES = {
    "[:digit:]": "0-9", "[:alpha:]": "a-zA-Z", "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z", "[:lower:]": "a-z", "[:space:]": r"\s", "[:blank:]": r" \t",
    "[:xdigit:]": "0-9A-Fa-f", "[:punct:]": r"!-/:-@\[-`{-~", "[:word:]": r"\w",
    "[:cntrl:]": r"\x00-\x1f\x7f", "[:print:]": r"\x20-\x7e", "[:graph:]": r"\x21-\x7e",
}


def to_int(v: Any) -> int:
    """Kamailio's str2int: a numeric string converts, anything else is 0."""
    if isinstance(v, int):
        return int(v)
    if v is None:
        return 0
    try:
        return int(str(v).strip(), 10)
    except ValueError:
        return 0


def int_or_none(v: Any) -> int | None:
    if isinstance(v, int):
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip(), 10)
        except ValueError:
            return None
    return None


def to_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    return v if isinstance(v, str) else str(v)


def truth(v: Any) -> bool:
    """What `if (...)` tests: the value as an int, greater than zero."""
    return to_int(v) > 0


def _fill_null(a: Any, b: Any) -> tuple[Any, Any]:
    """A null value compares as 0 beside an int and as "" beside a string (as Kamailio 5.6
    does: `$rU == ""` is true when there is no user). `== $null` is handled by the caller."""
    if a is None:
        a = 0 if isinstance(b, int) else ""
    if b is None:
        b = 0 if isinstance(a, int) else ""
    return a, b


def equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        if a is None and b is None:
            return True
        a, b = _fill_null(a, b)
    if isinstance(a, int) or isinstance(b, int):
        ia, ib = int_or_none(a), int_or_none(b)
        if ia is not None and ib is not None:
            return ia == ib
    return to_str(a) == to_str(b)


def compare(op: str, a: Any, b: Any) -> bool:
    """<, >, <=, >=: numeric when one side is an int and both convert, else by string."""
    if a is None or b is None:
        a, b = _fill_null(a, b)
    x: Any = a
    y: Any = b
    if isinstance(a, int) or isinstance(b, int):
        ia, ib = int_or_none(a), int_or_none(b)
        if ia is not None and ib is not None:
            x, y = ia, ib
        else:
            x, y = to_str(a), to_str(b)
    if op == "<":
        return bool(x < y)
    if op == ">":
        return bool(x > y)
    if op == "<=":
        return bool(x <= y)
    return bool(x >= y)


def plus(a: Any, b: Any) -> Any:
    """`+`: concatenation when the left value is a string, addition when it is an int."""
    if isinstance(a, str):
        return a + to_str(b)
    if a is None:
        if b is None:
            return None
        return to_str(b) if isinstance(b, str) else to_int(b)
    ib = int_or_none(b)
    if ib is None and isinstance(b, str):
        return to_str(a) + b
    return int(a) + (ib or 0)


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero); ZeroDivisionError is a script error."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def c_mod(a: int, b: int) -> int:
    return a - b * c_div(a, b)


def posix_to_python(pattern: str) -> str:
    """Translate POSIX bracket classes ([[:digit:]]) that Python's re does not know."""
    if "[:" not in pattern:
        return pattern
    for cls, repl in _POSIX_CLASSES.items():
        pattern = pattern.replace(cls, repl)
    return pattern


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Kamailio matches `=~` case-insensitively with POSIX extended regexes."""
    return re.compile(posix_to_python(pattern), re.IGNORECASE)


#: compile_regex with a cache: `=~` against a variable compiles per distinct pattern once.
cached_regex: Callable[[str], re.Pattern[str]] = bounded_cache(compile_regex, 1024)
