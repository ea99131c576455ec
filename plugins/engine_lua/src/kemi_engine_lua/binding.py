"""Python callables that Lua calls for ``KSR.<module>.<function>(...)``.

One callable is built per export, the first time a script touches it, by kemi's shared
binding (``bind_export``) with Lua's rules for values: it converts the Lua arguments to the
export's parameter kinds, calls ``func(ctx, *args)`` with the message context of the route
running now (``holder.ctx``, saved and restored by nested runs) and converts the result to the
export's return kind. Lua receives plain callables only: no Python object whose
attributes Lua would read (see lupa issues #293/#294).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kemi_core.api import (
    PASS_ASCII,
    PASS_INT,
    PASS_NONE,
    BindingRules,
    KemiExport,
    ReturnKind,
    bind_export,
    from_script_text,
    normalize_xval,
    to_script_text,
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
        return from_script_text(value)
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
    """An XVAL result (``normalize_xval``), its text made safe for lupa (``to_script_text``)."""
    value = normalize_xval(value)
    return to_script_text(value) if value.__class__ is str else value


def to_text(value: Any, exp: KemiExport, pos: int) -> str:
    """An extra argument of a variadic export: strings, or numbers as their digits."""
    if type(value) is float and value.is_integer():
        return str(int(value))
    return to_str(value, exp, pos)


#: Lua's values for KEMI exports: numbers and strings convert both ways as Lua's tostring
#: does; a result goes back unchanged when lupa can take it as it is.
RULES = BindingRules(
    to_int=to_int, to_str=to_str, to_extra=to_text, arg_error=LuaArgError,
    returns={ReturnKind.XVAL: _ret_xval},
    passes={ReturnKind.XVAL: (PASS_NONE, PASS_INT, PASS_ASCII)},
    none_value=(),  # with unpack_returned_tuples, Lua receives no value at all
    ascii_only=True,
)


def bind(exp: KemiExport, holder: CtxHolder) -> Callable[..., Any]:
    """The callable Lua stores in ``KSR.<module>.<name>`` for ``exp`` (a variadic export
    takes extra arguments after the declared ones and gets them as strings)."""
    return bind_export(exp, holder, RULES)
