"""Python callables that JavaScript calls for ``KSR.<module>.<function>(...)``.

One callable is built per export, the first time a script touches it. It converts the JS
arguments to the export's parameter kinds, calls ``func(ctx, *args)`` with the message context
of the route running now (``holder.ctx``) and converts the result for JS: int and str results
as JS numbers and strings, ``null`` for an xval none, a boolean for a bool export.

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
    KemiExport,
    ParamKind,
    ReturnKind,
    normalize_bool,
    normalize_result,
    normalize_xval,
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


# A message may carry invalid UTF-8, which kemi keeps as lone surrogates (surrogateescape).
# QuickJS takes strings as strict UTF-8, so such a value travels with each escaped byte as a
# code point of the last private-use block and comes back the same way.
_TO_JS = {0xDC80 + i: 0x10FF80 + i for i in range(128)}
_FROM_JS = {0x10FF80 + i: 0xDC80 + i for i in range(128)}


def to_js_text(value: str) -> str:
    """``value`` as QuickJS can take it (ASCII and valid text unchanged)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.translate(_TO_JS)
    return value


def from_js_text(value: str) -> str:
    """The inverse of to_js_text for a string JS passes back."""
    return value if value.isascii() else value.translate(_FROM_JS)


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
        return from_js_text(value)
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return js_number_text(value)
    if type(value) is bool:
        return "true" if value else "false"
    raise JsArgError(f"{exp.signature(with_return=False)}: argument {pos + 1} must be a "
                     f"string, got {describe(value)}")


def _ret_int(value: Any) -> Any:
    if value.__class__ is not int:
        value = normalize_result(value)
    return value if INT32_MIN <= value <= INT32_MAX else float(value)


def _ret_xval(value: Any) -> Any:
    if value.__class__ is not str:
        value = normalize_xval(value)
        if value.__class__ is int:
            return value if INT32_MIN <= value <= INT32_MAX else float(value)
        if value is None:
            return None
    return to_js_text(value)


def _ret_none(_value: Any) -> None:
    return None


_RETURNS: dict[ReturnKind, Callable[[Any], Any]] = {
    ReturnKind.INT: _ret_int,
    ReturnKind.BOOL: normalize_bool,
    ReturnKind.XVAL: _ret_xval,
    ReturnKind.NONE: _ret_none,
}


def bind(exp: KemiExport, holder: Holder) -> Callable[..., Any]:
    """The callable JS gets as ``KSR.<module>.<name>`` for ``exp``."""
    func = exp.func
    kinds = exp.params
    nparams = len(kinds)
    ret = _RETURNS[exp.returns]
    convs = tuple(to_int if k is ParamKind.INT else to_str for k in kinds)
    is_int = tuple(k is ParamKind.INT for k in kinds)
    variadic = exp.variadic
    failed = holder.failed

    def count_error(got: int) -> JsArgError:
        least = "at least " if variadic else ""
        return JsArgError(f"{exp.signature(with_return=False)}: expected {least}{nparams} "
                          f"argument{'s' if nparams != 1 else ''}, got {got}")

    # Fast paths for the common arities: the value has the right type (and a string is ASCII)
    # most of the time, so the call is one check per argument and the export's own call.
    if nparams == 0 and not variadic:
        def call0(*args: Any) -> Any:
            try:
                if args:
                    raise count_error(len(args))
                return ret(func(holder.ctx))
            except BaseException as exc:
                failed(exc)
                raise
        return call0

    if nparams == 1 and not variadic:
        int0, conv0 = is_int[0], convs[0]

        def call1(*args: Any) -> Any:
            try:
                if len(args) != 1:
                    raise count_error(len(args))
                a = args[0]
                if (a.__class__ is not int) if int0 else (a.__class__ is not str or not a.isascii()):
                    a = conv0(a, exp, 0)
                return ret(func(holder.ctx, a))
            except BaseException as exc:
                failed(exc)
                raise
        return call1

    if nparams == 2 and not variadic:
        int0, int1 = is_int
        conv0, conv1 = convs

        def call2(*args: Any) -> Any:
            try:
                if len(args) != 2:
                    raise count_error(len(args))
                a, b = args
                if (a.__class__ is not int) if int0 else (a.__class__ is not str or not a.isascii()):
                    a = conv0(a, exp, 0)
                if (b.__class__ is not int) if int1 else (b.__class__ is not str or not b.isascii()):
                    b = conv1(b, exp, 1)
                return ret(func(holder.ctx, a, b))
            except BaseException as exc:
                failed(exc)
                raise
        return call2

    def calln(*args: Any) -> Any:
        try:
            if len(args) < nparams or (len(args) > nparams and not variadic):
                raise count_error(len(args))
            fixed = [c(v, exp, i) for i, (c, v) in enumerate(zip(convs, args, strict=False))]
            extra = [to_str(v, exp, nparams + i) for i, v in enumerate(args[nparams:])]
            return ret(func(holder.ctx, *fixed, *extra))
        except BaseException as exc:
            failed(exc)
            raise
    return calln
