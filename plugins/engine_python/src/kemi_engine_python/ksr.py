"""The script-side ``KSR`` module: every KEMI export as a plain Python callable.

Each export gets one closure, built once per signature shape from generated source, that checks
its arguments' kinds with ``isinstance``, reads the running message context from a one-slot
list shared by the whole tree, and converts the result to its ReturnKind. A KSR call therefore
costs one Python call plus the export itself: no name lookup, no dict, no pluggy.
"""

from __future__ import annotations

import keyword
import logging
import types
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    KemiExport,
    KemiRegistry,
    ParamKind,
    ReturnKind,
    flow_exports,
    normalize_bool,
    normalize_result,
    normalize_xval,
)

log = logging.getLogger("kemi.engine.python")

#: Holds the MsgContext of the route running now (index 0); engines save/restore it.
ContextSlot = list[Any]

_RETURN_EXPR = {
    ReturnKind.INT: "r = func(cur[0]{args})\n        return r if r.__class__ is int else as_int(r)",
    ReturnKind.BOOL: "r = func(cur[0]{args})\n        return r if r is True or r is False else as_bool(r)",
    ReturnKind.XVAL: "r = func(cur[0]{args})\n        return r if r is None or r.__class__ is str or r.__class__ is int else as_xval(r)",
    ReturnKind.NONE: "func(cur[0]{args})\n        return None",
}

_factories: dict[tuple[tuple[ParamKind, ...], ReturnKind], Callable[..., Callable[..., Any]]] = {}


def _factory(kinds: tuple[ParamKind, ...], returns: ReturnKind) -> Callable[..., Callable[..., Any]]:
    """Source for a closure maker of one signature shape, compiled once and cached."""
    key = (kinds, returns)
    made = _factories.get(key)
    if made is not None:
        return made
    params = [f"p{i}" for i in range(len(kinds))]
    checks = []
    for i, kind in enumerate(kinds):
        typ = "int" if kind is ParamKind.INT else "str"
        checks.append(f"        if not isinstance(p{i}, {typ}): bad({i}, p{i})\n")
    args = "".join(f", {p}" for p in params)
    body = _RETURN_EXPR[returns].format(args=args)
    src = (
        "def make(func, cur, bad, as_int, as_bool, as_xval, isinstance=isinstance, int=int, str=str):\n"
        f"    def call({', '.join(params)}):\n"
        + "".join(checks)
        + f"        {body}\n"
        "    return call\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(src, f"<ksr {''.join(k.value[0] for k in kinds)}->{returns.value}>", "exec"), namespace)
    made = namespace["make"]
    _factories[key] = made
    return made


def make_callable(exp: KemiExport, cur: ContextSlot) -> Callable[..., Any]:
    """The script-visible callable for one export, reading the context from ``cur[0]``."""
    sig = exp.signature()

    def bad(index: int, value: Any) -> None:
        kind = exp.params[index].value
        raise TypeError(f"{sig}: argument {index + 1} must be {kind}, not {type(value).__name__}")

    call = _factory(exp.params, exp.returns)(exp.func, cur, bad, normalize_result,
                                                normalize_bool, normalize_xval)
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


#: KSR.x.exit/drop even when the registry lacks the core's exports (engine unit tests).
BUILTINS = tuple(flow_exports())


def build_ksr(registry: KemiRegistry, cur: ContextSlot,
              target: types.ModuleType | None = None) -> types.ModuleType:
    """Fill (or refill) the ``KSR`` module object from the registry.

    Refilling keeps the module object, so scripts that did ``import KSR`` earlier see the new
    functions as well.
    """
    mod = target if target is not None else types.ModuleType("KSR", "KEMI exports (kemi)")
    for name in [n for n in vars(mod) if not n.startswith("__")]:
        delattr(mod, name)
    for name, exp in registry.module("").items():
        setattr(mod, name, make_callable(exp, cur))
    modules: dict[str, dict[str, KemiExport]] = {
        m: dict(registry.module(m)) for m in registry.module_names if m}
    for exp in BUILTINS:
        modules.setdefault(exp.module, {}).setdefault(exp.name, exp)
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
