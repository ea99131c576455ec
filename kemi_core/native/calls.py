"""Function and route calls: resolved and fixed up at compile time, one closure per call site.

Kamailio's rules: a function returning > 0 is true, < 0 false, and 0 ends the script (like
``exit``). Each call stores its return code for ``$rc`` / ``$retcode`` / ``$?``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.engine import ScriptDrop, ScriptExit, normalize_result
from kemi_core.errors import ConfigError, ScriptError
from kemi_core.native import ast as A
from kemi_core.native import values as V
from kemi_core.native.functions import BUILTINS
from kemi_core.pv import PvError
from kemi_core.runtime.core import CfgFunction

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core

#: ctx.extra key of the last return code ($rc).
RETCODE_KEY = "retcode"

RawCall = Callable[["MsgContext"], int]
ArgGetter = Callable[["MsgContext"], Any]


class ScriptFault(ScriptError):  # noqa: N818 - a runtime failure inside a route, with its place
    """A statement failed at run time; ``loc`` is where it was written."""

    def __init__(self, loc: A.Loc, reason: str) -> None:
        self.loc = loc
        self.reason = reason
        super().__init__(f"{loc}: {reason}")


_PASS_THROUGH = (ScriptExit, ScriptDrop, ScriptFault)


class CallCompiler:
    """Shared state of one compilation and the call-site compilers."""

    def __init__(self, core: Core, known_routes: set[str], syntax_only: bool = False) -> None:
        self.core = core
        self.known_routes = known_routes
        self.syntax_only = syntax_only
        #: sub-route name -> one-element list holding its compiled callable (filled later,
        #: so routes can call each other in any order).
        self.route_cells: dict[str, list[Callable[[MsgContext], int] | None]] = {}
        #: (name, file, line) of functions no module provides (syntax-only checks).
        self.unknown: list[tuple[str, str, int]] = []
        #: (spec, file, line) of pseudo-variables no loaded module defines (syntax-only).
        self.unknown_pvs: list[tuple[str, str, int]] = []

    def err(self, loc: A.Loc, reason: str) -> ConfigError:
        return ConfigError(reason, loc.file, loc.line, loc.column)

    # ---- resolution ----------------------------------------------------------------------
    def resolve(self, node: A.Call) -> CfgFunction | None:
        """Built-in core statements first (they are keywords in Kamailio), then modules."""
        name = node.name
        fn = BUILTINS.get(name) or self.core.cfg_functions.get(name)
        if fn is None and "." in name:  # module.function
            module, _, short = name.rpartition(".")
            cand = self.core.cfg_functions.get(short) or BUILTINS.get(short)
            if cand is not None and cand.module == module:
                fn = cand
        if fn is None:
            if self.syntax_only:
                self.unknown.append((name, node.loc.file, node.loc.line))
                return None
            raise self.err(node.loc, f"unknown function '{name}' (is its module loaded?)")
        n = len(node.args)
        if not fn.min_args <= n <= fn.max_args:
            want = (str(fn.min_args) if fn.min_args == fn.max_args
                    else f"{fn.min_args} to {fn.max_args}")
            raise self.err(node.loc, f"{name}() takes {want} argument"
                                     f"{'' if want == '1' else 's'}, {n} given")
        return fn

    # ---- arguments -----------------------------------------------------------------------
    def expr(self, node: A.Expr) -> ArgGetter:  # provided by ExprCompiler
        raise NotImplementedError

    def argument(self, fn: CfgFunction, pos: int, node: A.Expr) -> tuple[bool, Any]:
        """(True, constant) or (False, getter) for argument ``pos`` of ``fn``."""
        if pos in fn.int_params:
            if isinstance(node, A.Const):
                if isinstance(node.value, int):
                    return True, node.value
                text = node.value.strip()
                iv = V.int_or_none(text)
                if iv is None and text[:2].lower() == "0x":
                    try:
                        iv = int(text, 16)
                    except ValueError:
                        iv = None
                if iv is not None:
                    return True, iv
                if text.startswith("$"):
                    try:
                        spec = self.core.pv.parse(text)
                    except PvError as exc:
                        raise self.err(node.loc, f"argument {pos + 1} of {fn.name}(): {exc}")
                    get = spec.get
                    return False, lambda ctx: V.to_int(get(ctx))
                raise self.err(node.loc, f"argument {pos + 1} of {fn.name}() must be an "
                                         f"integer, not {node.value!r}")
            inner = self.expr(node)
            return False, lambda ctx: V.to_int(inner(ctx))
        if isinstance(node, A.Const):
            return True, node.value if isinstance(node.value, str) else str(node.value)
        inner = self.expr(node)
        return False, lambda ctx: V.to_str(inner(ctx))

    # ---- call sites ----------------------------------------------------------------------
    def raw_call(self, node: A.Call, mode: str = "value") -> RawCall:
        """One closure per call site; ``mode`` says what it returns, so no wrapper closure is
        needed: "value" the int result, "stmt" None, "cond" result > 0, "notcond" its negation,
        "bool" 1 or 0 (a call used as a value)."""
        site = self.call_site(node)
        if site is None:
            return self.unresolved(node)
        func, parts = site
        return make_call(func, parts, node.loc, node.name, mode)

    def call_site(self, node: A.Call) -> tuple[Callable[..., Any], list[tuple[bool, Any]]] | None:
        """The function to call and its fixed-up arguments ((True, constant) or (False,
        getter)); None when no module provides it (syntax-only checks). A function with a
        ``by_args`` table (argument count -> function) gives the one for this call's count."""
        fn = self.resolve(node)
        if fn is None:
            return None
        parts = [self.argument(fn, i, a) for i, a in enumerate(node.args)]
        by_args = getattr(fn.func, "by_args", None)
        func = fn.func if by_args is None else by_args.get(len(parts), fn.func)
        return func, parts

    @staticmethod
    def unresolved(node: A.Call) -> RawCall:
        loc, name = node.loc, node.name

        def unresolved(ctx: MsgContext) -> int:
            raise ScriptFault(loc, f"unknown function '{name}'")
        return unresolved

    def bool_call(self, node: A.Call) -> ArgGetter:
        """A call used as a value: 1 when it returned > 0, else 0 (Kamailio's rule)."""
        return self.raw_call(node, "bool")

    def route_cell(self, node: A.RouteCall) -> list[Callable[[MsgContext], int] | None]:
        """The one-element list that will hold route[NAME]'s compiled callable."""
        if node.name not in self.known_routes:
            raise self.err(node.loc, f"route({node.name}): no route[{node.name}] block is defined")
        return self.route_cells.setdefault(node.name, [None])

    def route_runner(self, node: A.RouteCall) -> RawCall:
        cell = self.route_cell(node)

        def run(ctx: MsgContext) -> int:
            r = cell[0](ctx)  # type: ignore[misc]
            ctx.extra[RETCODE_KEY] = r
            return r
        return run


#: What a call site closure returns, by mode (r is the int result, never 0 there).
_RETURNS = {"value": "return r", "stmt": "return None", "cond": "return r > 0",
            "notcond": "return r < 0", "bool": "return 1 if r > 0 else 0"}
_CALL_TEMPLATE = """
def make({params}):
    def call(ctx):
        try:
            r = func(ctx{args})
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise ScriptFault(loc, f"{{name}}() failed: {{exc!r}}") from exc
        if r.__class__ is not int:
            r = normalize_result(r)
        ctx.extra[RETCODE_KEY] = r
        if r == 0:
            raise ScriptExit()
        {ret}
    return call
"""
_CALL_MAKERS: dict[tuple[str, tuple[bool, ...]], Callable[..., RawCall]] = {}


def make_call(func: Callable[..., Any], parts: list[tuple[bool, Any]], loc: A.Loc, name: str,
              mode: str) -> RawCall:
    """The call-site closure: constants bound as closure cells, getters called inline (their
    errors fault the call too), the result normalised, stored for $rc, 0 ends the script.
    Built from a source template (one per argument shape) so that no per-call loop or tuple
    unpacking remains."""
    shape = tuple(is_const for is_const, _ in parts)
    key = (mode, shape)
    maker = _CALL_MAKERS.get(key)
    if maker is None:
        names = [f"a{i}" for i in range(len(parts))]
        args = "".join(f", {n}" if c else f", {n}(ctx)" for n, c in zip(names, shape, strict=True))
        src = _CALL_TEMPLATE.format(params=", ".join(["func", "loc", "name", *names]),
                                    args=args, ret=_RETURNS[mode])
        env: dict[str, Any] = {"_PASS_THROUGH": _PASS_THROUGH, "ScriptFault": ScriptFault,
                               "ScriptExit": ScriptExit, "normalize_result": normalize_result,
                               "RETCODE_KEY": RETCODE_KEY}
        exec(compile(src, f"<native call {mode} {len(parts)}>", "exec"), env)  # noqa: S102
        maker = env["make"]
        _CALL_MAKERS[key] = maker
    return maker(func, loc, name, *(v for _, v in parts))
