"""The script-side ``KSR`` module: every KEMI export as a plain Python callable.

Each export gets one closure, made by kemi's shared binding (``bind_export``, generated source
per signature shape) with Python's rules: it checks its arguments' kinds, reads the running
message context from a one-slot list shared by the whole tree, and converts the result to its
ReturnKind. A KSR call therefore
costs one Python call plus the export itself: no name lookup, no dict, no pluggy.
"""

from __future__ import annotations

import keyword
import logging
import types
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    BindingRules,
    KemiExport,
    KemiRegistry,
    bind_export,
    script_exports,
)

log = logging.getLogger("kemi.engine.python")

#: Holds the MsgContext of the route running now (index 0); engines save/restore it.
ContextSlot = list[Any]


def _strict(kind: type, name: str) -> Callable[[Any, KemiExport, int], Any]:
    """A parameter check: values of ``kind`` (subclasses too) pass, anything else is a
    TypeError, as Python's own calls would raise it (no conversion: Python has types)."""

    def check(value: Any, exp: KemiExport, pos: int) -> Any:
        if isinstance(value, kind):
            return value
        raise TypeError(f"{exp.signature()}: argument {pos + 1} must be {name}, "
                        f"not {type(value).__name__}")
    return check


def _extra(value: Any, exp: KemiExport, pos: int) -> str:
    """An extra argument of a variadic export (KSR.x.modf): a str, or an int as its digits."""
    if isinstance(value, str):
        return value
    if type(value) is int:
        return str(value)
    raise TypeError(f"{exp.signature()}: argument {pos + 1} must be str, "
                    f"not {type(value).__name__}")


#: Python's rules for KEMI exports: arguments are checked, not converted; the callables have
#: Python's own signature (a wrong number of arguments is Python's TypeError) and read the
#: context from the engine's one-slot list.
RULES = BindingRules(to_int=_strict(int, "int"), to_str=_strict(str, "str"), to_extra=_extra,
                     context="slot", native_arity=True)


def make_callable(exp: KemiExport, cur: ContextSlot) -> Callable[..., Any]:
    """The script-visible callable for one export, reading the context from ``cur[0]``."""
    sig = exp.signature()
    call = bind_export(exp, cur, RULES)
    call.__name__ = exp.name
    call.__qualname__ = f"KSR.{exp.qualified_name}"
    call.__doc__ = f"{sig}\n\n{exp.doc}" if exp.doc else sig
    return call


class KsrNamespace(types.SimpleNamespace):
    """``KSR.<module>``: the module's functions as attributes, set once at build time."""

    def __init__(self, module: str) -> None:
        super().__init__()
        object.__setattr__(self, "__ksr_module__", module)

    def __repr__(self) -> str:
        return f"<KSR.{self.__ksr_module__} ({len(vars(self)) - 1} functions)>"


def build_ksr(registry: KemiRegistry, cur: ContextSlot,
              target: types.ModuleType | None = None) -> types.ModuleType:
    """Fill (or refill) the ``KSR`` module object from the registry (plus ``KSR.x.exit``/
    ``KSR.x.drop`` when the registry lacks them: ``script_exports``, as the other engines).

    Refilling keeps the module object, so scripts that did ``import KSR`` earlier see the new
    functions as well.
    """
    mod = target if target is not None else types.ModuleType("KSR", "KEMI exports (kemi)")
    for name in [n for n in vars(mod) if not n.startswith("__")]:
        delattr(mod, name)
    modules: dict[str, dict[str, KemiExport]] = {}
    for exp in script_exports(registry):
        modules.setdefault(exp.module, {})[exp.name] = exp
    for name, exp in modules.pop("", {}).items():
        setattr(mod, name, make_callable(exp, cur))
    for module, funcs in sorted(modules.items()):
        if hasattr(mod, module):
            log.warning("KSR.%s is both a core function and a module; the module wins", module)
        ns = KsrNamespace(module)
        for name, exp in funcs.items():
            setattr(ns, name, make_callable(exp, cur))
        setattr(mod, module, ns)
    return mod


def python_name(name: str) -> str:
    """A name usable in Python source (keywords get a trailing underscore)."""
    return name + "_" if keyword.iskeyword(name) else name
