"""Statements and route blocks -> closures. Compiled once; messages never see the AST.

A statement closure returns None to go on, ``BREAK`` for ``break``, or an int when the
route returns. ``exit``/``drop``/a function returning 0 raise ScriptExit/ScriptDrop, which
unwind every nested ``route()`` at once; run-time failures raise ScriptFault with the place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.engine import ScriptDrop, ScriptExit
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native import values as V
from kemi_core.native.calls import ScriptFault
from kemi_core.native.codegen import BlockWriter, assign_failed
from kemi_core.native.exprs import ExprCompiler, _UnknownPv
from kemi_core.pv import PvSpec

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.native")

#: What a ``break`` statement returns to its switch or while.
BREAK: Any = type("Break", (), {"__repr__": lambda self: "BREAK"})()
Stmt = Callable[["MsgContext"], Any]
RouteFn = Callable[["MsgContext"], int]
_PASS = (ScriptExit, ScriptDrop, ScriptFault)
#: Pseudo-variables where ``:=`` first removes every older value.
_MULTI_VALUE_PVS = frozenset({"avp", "xavp", "xavu", "xavi"})
DEFAULT_MAX_WHILE_LOOPS = 100
#: Statements codegen writes inline (a block of one other statement is that statement's closure).
_INLINED = (A.ExprStmt, A.If, A.Exit, A.Return, A.Break, A.Drop)


def _noop(ctx: MsgContext) -> None:
    return None


#: Attribute set on statement closures that always return None (calls, assignments...):
#: a block calls them without testing the result.
VOID = "native_void"
_noop.native_void = True  # type: ignore[attr-defined]


def _void(fn: Stmt) -> Stmt:
    setattr(fn, VOID, True)
    return fn


def _is_void(fn: Stmt) -> bool:
    return getattr(fn, VOID, False) is True


@attrs.define
class Program:
    """Compiled routes by kind ("request_route", "route", "failure_route", ...) and name
    (None for the unnamed ones)."""

    routes: dict[str, dict[str | None, RouteFn]] = attrs.Factory(dict)

    def get(self, kind: str, name: str | None) -> RouteFn | None:
        table = self.routes.get(kind)
        return None if table is None else table.get(name)


class Compiler(ExprCompiler):
    def __init__(self, core: Core, known_routes: set[str], syntax_only: bool = False,
                 errors: list[ConfigError] | None = None) -> None:
        super().__init__(core, known_routes, syntax_only)
        #: When a list is given, errors are collected per statement instead of raised.
        self.errors = errors
        limit = core.config.extra.get("max_while_loops", DEFAULT_MAX_WHILE_LOOPS)
        self.max_while_loops = int(limit) if limit is not None else DEFAULT_MAX_WHILE_LOOPS
        #: Set while compiling a block that engine.run calls directly (not a route[NAME]).
        self.exit_returns = False

    # ---- blocks -------------------------------------------------------------------------
    def stmt_list(self, stmts: Iterable[A.Stmt]) -> list[Stmt]:
        out: list[Stmt] = []
        for node in stmts:
            try:
                out.append(self.stmt(node))
            except ConfigError as exc:
                if self.errors is None:
                    raise
                self.errors.append(exc)
        return out

    def block(self, stmts: Iterable[A.Stmt]) -> Stmt:
        nodes = tuple(stmts)
        if len(nodes) == 1 and not isinstance(nodes[0], _INLINED):
            compiled = self.stmt_list(nodes)  # its closure, without a function around it
            return compiled[0] if compiled else _noop
        return self.generated(nodes) if nodes else _noop

    def generated(self, stmts: Iterable[A.Stmt]) -> Stmt:
        """Statements as one generated function (codegen), void when no path returns."""
        writer = BlockWriter(self, False, BREAK)
        fn = writer.build(stmts, "block")
        return fn if writer.returns else _void(fn)

    def is_void(self, fn: Stmt) -> bool:
        return _is_void(fn)

    def route(self, route: A.Route) -> RouteFn:
        # Only engine.run calls the other kinds, and it turns ScriptExit into 1: there ``exit``
        # outside a sub-route can simply return 1 (raising costs more than the route itself).
        self.exit_returns = route.kind != "route"
        try:
            return BlockWriter(self, True, BREAK).build(route.body, "run_route")
        finally:
            self.exit_returns = False

    # ---- statements ---------------------------------------------------------------------
    def stmt(self, node: A.Stmt) -> Stmt:
        method = getattr(self, "stmt_" + type(node).__name__.lower(), None)
        if method is None:
            raise self.err(node.loc, f"unsupported statement {type(node).__name__}")
        return method(node)  # type: ignore[no-any-return]

    def stmt_exprstmt(self, node: A.ExprStmt) -> Stmt:
        if isinstance(node.expr, A.Call):
            return _void(self.raw_call(node.expr, "stmt"))
        raw = self.route_runner(node.expr)

        def call_stmt(ctx: MsgContext) -> None:
            raw(ctx)
        return _void(call_stmt)

    def stmt_assign(self, node: A.Assign) -> Stmt:
        spec, clear_first = self.assign_target(node)
        if self.direct_target(spec, clear_first) is not None:
            return self.generated((node,))
        return self.assign_closure(node, spec, clear_first)

    def assign_target(self, node: A.Assign) -> tuple[PvSpec | _UnknownPv, bool]:
        """The assigned variable, and whether it is emptied first (``:=`` on a multi-value one)."""
        spec = self.pv(node.target.spec, node.target.loc)
        if not spec.writable:
            raise self.err(node.loc, f"{node.target.spec} cannot be assigned (read-only)")
        return spec, node.op == ":=" and spec.name in _MULTI_VALUE_PVS

    @staticmethod
    def direct_target(spec: PvSpec | _UnknownPv, clear_first: bool) -> PvSpec | None:
        """The variable when ``$x = value`` may call its setter itself (spec.set would re-check
        what ``writable`` checked at compile time): codegen writes that call inline."""
        if isinstance(spec, PvSpec) and not clear_first and spec.index == "":
            return spec
        return None

    def assign_closure(self, node: A.Assign, spec: PvSpec | _UnknownPv, clear_first: bool) -> Stmt:
        loc, text = node.loc, node.target.spec
        value = self.assigned(node.value)
        setter = spec.set

        def assign(ctx: MsgContext) -> None:
            try:
                v = value(ctx)
                if clear_first:
                    setter(ctx, None)
                setter(ctx, v)
            except _PASS:
                raise
            except Exception as exc:
                assign_failed(loc, text, exc)
        return _void(assign)

    def stmt_if(self, node: A.If) -> Stmt:
        return self.generated((node,))

    def stmt_switch(self, node: A.Switch) -> Stmt:
        subject = self.guarded(node.loc, self.expr(node.subject), "switch value")
        flat: list[Stmt] = []
        int_cases: dict[int, int] = {}
        str_cases: dict[str, int] = {}
        default: int | None = None
        for case in node.cases:
            start = len(flat)
            if case.value is None:
                default = start
            elif isinstance(case.value, int):
                int_cases[case.value] = start
            else:
                str_cases[case.value] = start
            flat.extend(self.stmt_list(case.body))
        body = tuple(flat)
        n = len(body)

        def find(v: Any) -> int | None:
            i: int | None = None
            if isinstance(v, int):
                i = int_cases.get(v)
                if i is None and str_cases:
                    i = str_cases.get(str(v))
            elif isinstance(v, str):
                i = str_cases.get(v)
                if i is None and int_cases:
                    iv = V.int_or_none(v)
                    if iv is not None:
                        i = int_cases.get(iv)
            return default if i is None else i

        def switch(ctx: MsgContext) -> Any:
            k = find(subject(ctx))
            if k is None:
                return None
            while k < n:  # falls through the cases below until a break, as in C
                r = body[k](ctx)
                if r is not None:
                    return None if r is BREAK else r
                k += 1
            return None
        return switch

    def stmt_while(self, node: A.While) -> Stmt:
        cond = self.condition(node.cond, (node.loc, "while condition"))
        body = self.block(node.body)
        limit = self.max_while_loops
        loc = node.loc

        def loop(ctx: MsgContext) -> Any:
            count = 0
            while cond(ctx):
                count += 1
                if limit and count > limit:
                    log.error("%s: runaway while (more than %d loops, see max_while_loops): "
                              "leaving the loop", loc, limit)
                    return None
                r = body(ctx)
                if r is not None:
                    return None if r is BREAK else r
            return None
        return loop

    def stmt_return(self, node: A.Return) -> Stmt:
        if node.value is None:
            return lambda ctx: 1
        if isinstance(node.value, A.Const) and V.to_int(node.value.value) != 0:
            const = V.to_int(node.value.value)
            return lambda ctx: const
        value = self.guarded(node.loc, self.expr(node.value), "return value")

        def ret(ctx: MsgContext) -> int:
            r = V.to_int(value(ctx))
            if r == 0:  # return(0) ends the whole script, like exit
                raise ScriptExit()
            return r
        return ret

    def stmt_exit(self, node: A.Exit) -> Stmt:
        if self.exit_returns:
            return lambda ctx: 1

        def do_exit(ctx: MsgContext) -> None:
            raise ScriptExit()
        return do_exit

    def stmt_drop(self, node: A.Drop) -> Stmt:
        def do_drop(ctx: MsgContext) -> None:
            ctx.dropped = True
            raise ScriptDrop()
        return do_drop

    def stmt_break(self, node: A.Break) -> Stmt:
        return lambda ctx: BREAK


def compile_routes(core: Core, routes: list[A.Route], syntax_only: bool = False,
                   errors: list[ConfigError] | None = None,
                   extra_known: Iterable[str] = ()) -> tuple[Program, Compiler]:
    """Compile parsed routes into a Program. Raises the first ConfigError unless ``errors``
    is given (then every error is appended there and the Program is partial).
    ``extra_known``: names of route[] blocks that failed to parse (no cascade of errors)."""
    known = {r.name for r in routes if r.kind == "route" and r.name} | set(extra_known)
    comp = Compiler(core, known, syntax_only, errors)
    program = Program()
    for route in routes:
        table = program.routes.setdefault(route.kind, {})
        if route.name in table:
            what = route.kind if route.name is None else f"{route.kind}[{route.name}]"
            exc = ConfigError(f"{what} is defined twice", route.loc.file, route.loc.line)
            if errors is None:
                raise exc
            errors.append(exc)
            continue
        table[route.name] = comp.route(route)
    subroutes = program.routes.get("route", {})
    for name, cell in comp.route_cells.items():
        cell[0] = subroutes.get(name)
        if cell[0] is None:  # only when the route failed to compile (errors collected)
            cell[0] = _missing_route(name)
    return program, comp


def _missing_route(name: str) -> RouteFn:
    def missing(ctx: MsgContext) -> int:
        raise ScriptFault(A.Loc("<native>", 0, 0), f"route[{name}] did not compile")
    return missing
