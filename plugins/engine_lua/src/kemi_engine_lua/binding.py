"""Python callables that Lua calls for ``KSR.<module>.<function>(...)``.

One callable is built per export, the first time a script touches it. It converts the Lua
arguments to the export's parameter kinds, calls ``func(ctx, *args)`` with the message context
of the route running now (``holder.ctx``, saved and restored by nested runs) and converts the
result to the export's return kind. Lua receives plain callables only: no Python object whose
attributes Lua would read (see lupa issues #293/#294).
"""

from __future__ import annotations

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


class CtxHolder(Protocol):
    """What a binding reads on each call: the context of the running route."""

    ctx: Any


class LuaArgError(TypeError):
    """Wrong number or kind of arguments from a script; Lua reports it with the script line."""


def signature(exp: KemiExport) -> str:
    """``KSR.sl.send_reply(int code, str reason)`` for argument errors."""
    return exp.signature(with_return=False)


def _lua_number_text(value: float) -> str:
    """A Lua float as Lua 5.4's tostring writes it (``2.0``, ``1.5``, ``1e+20``)."""
    text = f"{value:.14g}"
    if text.lstrip("-").isdigit():
        text += ".0"
    return text


# Bytes are bytes: a message may carry invalid UTF-8, which kemi keeps as lone surrogates
# (surrogateescape). lupa converts strings strictly, so such a value goes to Lua with each
# escaped byte as a code point of the last private-use block (valid UTF-8) and comes back
# the same way: KSR.hdr.append("X: " .. KSR.pv.get("$ci")) writes the original bytes.
_TO_LUA = {0xDC80 + i: 0x10FF80 + i for i in range(128)}
_FROM_LUA = {0x10FF80 + i: 0xDC80 + i for i in range(128)}


def to_lua_text(value: str) -> str:
    """``value`` as lupa can hand it to Lua (ASCII and valid text unchanged)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.translate(_TO_LUA)
    return value


def from_lua_text(value: str) -> str:
    """The inverse of to_lua_text for a string Lua passes back."""
    return value if value.isascii() else value.translate(_FROM_LUA)


def to_int(value: Any, exp: KemiExport, pos: int) -> int:
    """An int parameter: Lua integers, floats with an integral value, strings of digits."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, str | bytes):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        try:
            return int(text.strip(), 10)
        except ValueError:
            pass
    raise LuaArgError(
        f"{signature(exp)}: argument {pos + 1} must be an integer, got {_describe(value)}")


def to_str(value: Any, exp: KemiExport, pos: int) -> str:
    """A str parameter: Lua strings, or numbers converted the way Lua's tostring does."""
    if type(value) is str:
        return value if value.isascii() else value.translate(_FROM_LUA)
    if type(value) is bytes:
        return value.decode("utf-8", "surrogateescape")
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return _lua_number_text(value)
    raise LuaArgError(
        f"{signature(exp)}: argument {pos + 1} must be a string, got {_describe(value)}")


def _describe(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str | bytes):
        return f"string {value!r}"
    return type(value).__name__


def _ret_xval(value: Any) -> Any:
    """An XVAL result (``normalize_xval``), its text made safe for lupa (``to_lua_text``)."""
    value = normalize_xval(value)
    return to_lua_text(value) if value.__class__ is str else value


def _ret_none(_value: Any) -> tuple[()]:
    return ()  # with unpack_returned_tuples, Lua receives no value at all


_RETURNS: dict[ReturnKind, Callable[[Any], Any]] = {
    ReturnKind.INT: normalize_result,
    ReturnKind.BOOL: normalize_bool,
    ReturnKind.XVAL: _ret_xval,
    ReturnKind.NONE: _ret_none,
}


def to_text(value: Any, exp: KemiExport, pos: int) -> str:
    """An extra argument of a variadic export: strings, or numbers as their digits."""
    if type(value) is float and value.is_integer():
        return str(int(value))
    return to_str(value, exp, pos)


def bind(exp: KemiExport, holder: CtxHolder, variadic: bool = False) -> Callable[..., Any]:
    """The callable Lua stores in ``KSR.<module>.<name>`` for ``exp``; ``variadic`` accepts
    extra arguments after the declared ones and passes them on as strings."""
    func = exp.func
    kinds = exp.params
    nparams = len(kinds)
    ret = _RETURNS[exp.returns]
    convs = tuple(to_int if k is ParamKind.INT else to_str for k in kinds)
    int_only = ParamKind.INT
    is_int = tuple(k is int_only for k in kinds)

    def wrong_count(got: int) -> LuaArgError:
        return LuaArgError(f"{signature(exp)}: expected {nparams} argument"
                           f"{'s' if nparams != 1 else ''}, got {got}")

    if variadic:
        def callv(*args: Any) -> Any:
            if len(args) < nparams:
                raise LuaArgError(f"{signature(exp)[:-1]}, ...): expected at least {nparams} "
                                  f"argument{'s' if nparams != 1 else ''}, got {len(args)}")
            fixed = [c(v, exp, i) for i, (c, v) in enumerate(zip(convs, args, strict=False))]
            extra = [to_text(v, exp, nparams + i) for i, v in enumerate(args[nparams:])]
            return ret(func(holder.ctx, *fixed, *extra))
        return callv

    # Fast paths for the common arities: the value already has the right type most of the time.
    if nparams == 0:
        def call0(*args: Any) -> Any:
            if args:
                raise wrong_count(len(args))
            return ret(func(holder.ctx))
        return call0

    if nparams == 1:
        want_int = is_int[0]
        conv = convs[0]

        def call1(*args: Any) -> Any:
            if len(args) != 1:
                raise wrong_count(len(args))
            a = args[0]
            if (type(a) is not int) if want_int else (type(a) is not str or not a.isascii()):
                a = conv(a, exp, 0)
            return ret(func(holder.ctx, a))
        return call1

    if nparams == 2:
        int0, int1 = is_int
        conv0, conv1 = convs

        def call2(*args: Any) -> Any:
            if len(args) != 2:
                raise wrong_count(len(args))
            a, b = args
            if (type(a) is not int) if int0 else (type(a) is not str or not a.isascii()):
                a = conv0(a, exp, 0)
            if (type(b) is not int) if int1 else (type(b) is not str or not b.isascii()):
                b = conv1(b, exp, 1)
            return ret(func(holder.ctx, a, b))
        return call2

    def calln(*args: Any) -> Any:
        if len(args) != nparams:
            raise wrong_count(len(args))
        return ret(func(holder.ctx, *[c(v, exp, i) for i, (c, v) in enumerate(zip(convs, args, strict=True))]))
    return calln
