"""Python callables that JavaScript calls for ``KSR.<module>.<function>(...)``.

One callable is built per export, the first time a script touches it, by kemi's shared
binding (``bind_export``) with JavaScript's rules for values. It converts the JS arguments to
the export's parameter kinds, calls ``func(ctx, *args)`` with the message context of the route
running now (``holder.ctx``) and converts the result for JS: int and str results as JS numbers
and strings, ``null`` for an xval none, a boolean for a bool export.

QuickJS turns a Python exception raised by a callable into a JS ``InternalError`` and drops
the Python exception; so each callable hands the exception to ``holder.failed`` before raising
it, and the engine gives it its meaning (``KSR.x.exit()``'s ScriptExit ...) when the JS call
returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from kemi_core.api import (
    PASS_ASCII,
    PASS_INT32,
    PASS_NONE,
    BindingRules,
    KemiExport,
    ReturnKind,
    bind_export,
    from_script_text,
    normalize_result,
    normalize_xval,
    to_script_text,
)

#: QuickJS converts a Python int to a JS int32 (bits above are lost): larger ones go as floats,
#: which JS numbers are anyway.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class Holder(Protocol):
    """What a binding reads and writes on each call (the engine)."""

    ctx: Any

    def failed(self, exc: BaseException) -> None: ...


class JsArgError(TypeError):
    """Wrong number or kind of arguments from a script (reported with the script's line)."""


def js_number_text(value: float) -> str:
    """A JS number as ``String(n)`` writes it (``2``, ``1.5``, ``1e+21``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        mantissa = mantissa.removesuffix(".0")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def describe(value: Any) -> str:
    """A JS value as an error message names it."""
    if value is None:
        return "null/undefined"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"number {js_number_text(float(value))}"
    if isinstance(value, str):
        return f"string {value!r}"
    return "object"


def to_int(value: Any, exp: KemiExport, pos: int) -> int:
    """An int parameter: integral numbers, booleans (1/0), strings of digits."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is bool:
        return int(value)
    if type(value) is str:
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise JsArgError(f"{exp.signature(with_return=False)}: argument {pos + 1} must be an "
                     f"integer, got {describe(value)}")


def to_str(value: Any, exp: KemiExport, pos: int) -> str:
    """A str parameter: strings, numbers as JS writes them, booleans as true/false."""
    if type(value) is str:
        return from_script_text(value)
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return js_number_text(value)
    if type(value) is bool:
        return "true" if value else "false"
    raise JsArgError(f"{exp.signature(with_return=False)}: argument {pos + 1} must be a "
                     f"string, got {describe(value)}")


def _js_number(value: int) -> int | float:
    """An int as QuickJS can take it: a float beyond int32 (see INT32_MIN)."""
    return value if INT32_MIN <= value <= INT32_MAX else float(value)


def _ret_int(value: Any) -> Any:
    return _js_number(value if value.__class__ is int else normalize_result(value))


def _ret_xval(value: Any) -> Any:
    if value.__class__ is not str:
        value = normalize_xval(value)
        if value.__class__ is int:
            return _js_number(value)
        if value is None:
            return None
    return to_script_text(value)


#: JavaScript's values for KEMI exports: numbers, booleans and strings convert as JS does;
#: ints beyond int32 go back as floats; a Python error is handed to the engine (``failed``)
#: before QuickJS replaces it with an InternalError.
RULES = BindingRules(
    to_int=to_int, to_str=to_str, to_extra=to_str, arg_error=JsArgError,
    returns={ReturnKind.INT: _ret_int, ReturnKind.XVAL: _ret_xval},
    passes={ReturnKind.INT: (PASS_INT32,), ReturnKind.XVAL: (PASS_NONE, PASS_INT32, PASS_ASCII)},
    ascii_only=True,
    guarded=True,
)


def bind(exp: KemiExport, holder: Holder) -> Callable[..., Any]:
    """The callable JS gets as ``KSR.<module>.<name>`` for ``exp``."""
    return bind_export(exp, holder, RULES)
