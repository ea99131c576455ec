"""A route or block as ONE generated Python function: the statements and `if` tests that are
function calls, negated calls, route calls, `X == "const"`, `X == $null`, `&&`, `||` and `!`
written inline, every other statement or test called as the closure the compiler makes for it.

A closure per statement costs a Python call each (the block, the if, the test, the call site,
an ``exit``...); written inline they cost none. The generated code keeps the closures' rules
exactly: a call's result normalised, stored for ``$rc``, 0 ends the script (ScriptExit);
Python errors become ScriptFaults with the call's place (``name() failed: ...``) or the test's
(``if condition failed: ...``); ``exit`` in a main route returns 1 (engine.run's caller gives
ScriptExit that meaning anyway) and raises ScriptExit in a ``route[]``; ``break`` leaves the
block with BREAK (1 at a route's top). The called functions, constants, places and closures
are the generated function's globals (``v0``, ``v1``...), not closure cells: a call copies
every free variable of its function into the frame (and releases them after), ~15
instructions each, and a route has dozens of them. Each function is compiled on its own
(a code object shared by functions with other globals would thrash LOAD_GLOBAL's caches).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from types import CodeType
from typing import TYPE_CHECKING, Any

from kemi_core.engine import ScriptDrop, ScriptExit, normalize_result
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native import values as V
from kemi_core.native.calls import RETCODE_KEY, ScriptFault
from kemi_core.native.exprs import _is_boolean, _is_method

if TYPE_CHECKING:
    from kemi_core.native.compiler import Compiler
    from kemi_core.runtime.context import MsgContext

Fn = Callable[["MsgContext"], Any]
#: Deeper `if` nesting is left to a closure (a fresh generated function): Python's parser
#: refuses more than 100 indentation levels.
MAX_INDENT = 40
_GLOBALS: dict[str, Any] = {"ScriptFault": ScriptFault, "ScriptExit": ScriptExit,
                            "ScriptDrop": ScriptDrop, "normalize_result": normalize_result,
                            "_PASS": (ScriptExit, ScriptDrop, ScriptFault), "equal": V.equal,
                            "to_str": V.to_str}
log = logging.getLogger("kemi.native")
Lines = list[str]


def assign_failed(loc: A.Loc, target: str, exc: Exception) -> None:
    """A failed assignment is logged and the route goes on, the variable unchanged (Kamailio
    5.6 does the same: ``$ru = 5`` or ``$(branch(q)[9]) = 1`` are errors, not the end)."""
    log.error("%s: assignment to %s failed: %s", loc, target, exc)


_GLOBALS["assign_failed"] = assign_failed


#: The location table layout _one_line_table writes (PEP 657's, CPython 3.11-3.13); on any
#: other version generated functions keep the table compile() made (only slower to unwind).
_LINE_TABLE_FORMAT_KNOWN = (3, 11) <= sys.version_info[:2] <= (3, 13)


def _one_line_table(code: CodeType) -> bytes:
    """A location table putting every instruction on the function's first line, without
    columns. Python 3.11 works out the line of each frame an exception passes through
    (PyTraceBack_Here) by scanning the table from the start: with a route's one entry per
    instruction that cost ~25,000 instructions per frame for every ScriptExit of a route[]'s
    `exit`; entries of 8 instructions without columns cost a tenth. The places that matter
    are the script's (ScriptFault's loc), not the generated source's."""
    units = len(code.co_code) // 2
    full, rest = divmod(units, 8)
    # entry: 1 | 1101 (no columns) | length - 1, then the line delta as a signed varint (0)
    return bytes([0xEF, 0]) * full + (bytes([0xE8 | (rest - 1), 0]) if rest else b"")


class BlockWriter:
    """Writes one generated function; ``top``: a route's body (returns 1 at its end)."""

    def __init__(self, comp: Compiler, top: bool, break_value: Any) -> None:
        self.comp = comp
        self.top = top
        self.break_value = break_value
        self.values: list[Any] = []
        #: Whether some path returns a value (else the block is void: its caller needs no test).
        self.returns = False

    def bind(self, value: Any) -> str:
        self.values.append(value)
        return f"v{len(self.values) - 1}"

    def build(self, stmts: Iterable[A.Stmt], name: str) -> Fn:
        body = self.block(stmts, 2)
        if self.top:
            body.append("        return 1")
        elif not body:
            body.append("        pass")
        src = "\n".join([f"def {name}(ctx):", *body, ""])
        env = dict(_GLOBALS)
        env.update((f"v{i}", v) for i, v in enumerate(self.values))
        exec(compile(src, f"<native {name}>", "exec"), env)  # noqa: S102 - our own source
        fn = env[name]
        if _LINE_TABLE_FORMAT_KNOWN:
            fn.__code__ = fn.__code__.replace(co_linetable=_one_line_table(fn.__code__))
        return fn  # type: ignore[no-any-return]

    # ---- statements ---------------------------------------------------------------------
    def block(self, stmts: Iterable[A.Stmt], depth: int) -> Lines:
        out: Lines = []
        for node in stmts:
            try:
                out += self.stmt(node, depth)
            except ConfigError as exc:
                if self.comp.errors is None:
                    raise
                self.comp.errors.append(exc)
        return out

    def stmt(self, node: A.Stmt, depth: int) -> Lines:
        ind = "    " * depth
        if isinstance(node, A.ExprStmt):
            if isinstance(node.expr, A.Call):
                return self.call(node.expr, ind)
            cell = self.comp.route_cell(node.expr)
            return [f"{ind}r = {self.bind(cell)}[0](ctx)", f"{ind}ctx.extra[{RETCODE_KEY!r}] = r"]
        if isinstance(node, A.Assign):
            return self.assign(node, ind)
        if isinstance(node, A.If) and depth < MAX_INDENT:
            return self.if_stmt(node, depth)
        if isinstance(node, A.Exit):
            if self.comp.exit_returns:
                return self.ret(ind, "1")
            return [f"{ind}raise ScriptExit()"]
        if isinstance(node, A.Return):
            if node.value is None:
                return self.ret(ind, "1")
            if isinstance(node.value, A.Const) and V.to_int(node.value.value) != 0:
                return self.ret(ind, repr(V.to_int(node.value.value)))
        if isinstance(node, A.Break):
            return self.ret(ind, "1" if self.top else self.bind(self.break_value))
        if isinstance(node, A.Drop):
            return [f"{ind}ctx.dropped = True", f"{ind}raise ScriptDrop()"]
        fn = self.comp.stmt(node)
        if self.comp.is_void(fn):
            return [f"{ind}{self.bind(fn)}(ctx)"]
        self.returns = True
        result = f"1 if r is {self.bind(self.break_value)} else r" if self.top else "r"
        return [f"{ind}r = {self.bind(fn)}(ctx)", f"{ind}if r is not None:",
                f"{ind}    return {result}"]

    def assign(self, node: A.Assign, ind: str) -> Lines:
        """``$x = value`` calling the variable's setter inline (Compiler.direct_target), or
        the assignment's closure."""
        spec, clear_first = self.comp.assign_target(node)
        direct = self.comp.direct_target(spec, clear_first)
        if direct is None:
            return [f"{ind}{self.bind(self.comp.assign_closure(node, spec, clear_first))}(ctx)"]
        assert direct.pvdef.setter is not None
        args = [self.bind(direct.pvdef.setter), "ctx"]
        if direct.pvdef.takes_arg:
            args.append(self.bind(direct.arg))
        if isinstance(node.value, A.Const):
            args.append(self.bind(node.value.value))
        else:
            args.append(f"{self.bind(self.comp.assigned(node.value))}(ctx)")
        loc, text = self.bind(node.loc), self.bind(node.target.spec)
        return [f"{ind}try:",
                f"{ind}    {args[0]}({', '.join(args[1:])})",
                f"{ind}except _PASS:",
                f"{ind}    raise",
                f"{ind}except Exception as exc:",
                f"{ind}    assign_failed({loc}, {text}, exc)"]

    def ret(self, ind: str, value: str) -> Lines:
        self.returns = True
        return [f"{ind}return {value}"]

    def if_stmt(self, node: A.If, depth: int) -> Lines:
        ind = "    " * depth
        lines, test = self.cond(node.cond, (node.loc, "if condition"), ind)
        then = self.block(node.then, depth + 1) or [f"{ind}    pass"]
        out = [*lines, f"{ind}if {test}:", *then]
        if node.orelse is not None:
            orelse = self.block(node.orelse, depth + 1)
            if orelse:
                out += [f"{ind}else:", *orelse]
        return out

    def call(self, node: A.Call, ind: str) -> Lines:
        """A function call's lines (calls.make_call's rules), leaving its int result in r."""
        site = self.comp.call_site(node)
        if site is None:  # syntax-only checks: the unresolved closure faults when run
            return [f"{ind}r = {self.bind(self.comp.unresolved(node))}(ctx)"]
        fn, parts = site
        args = "".join(f", {self.bind(v)}" if const else f", {self.bind(v)}(ctx)"
                       for const, v in parts)
        func, loc, name = self.bind(fn), self.bind(node.loc), self.bind(node.name)
        return [f"{ind}try:",
                f"{ind}    r = {func}(ctx{args})",
                f"{ind}except _PASS:",
                f"{ind}    raise",
                f"{ind}except Exception as exc:",
                f'{ind}    raise ScriptFault({loc}, f"{{{name}}}() failed: {{exc!r}}") from exc',
                f"{ind}if r.__class__ is not int:",
                f"{ind}    r = (1 if r is None or r is True else -1 if r is False"
                f" else normalize_result(r))",
                f"{ind}ctx.extra[{RETCODE_KEY!r}] = r",
                f"{ind}if r == 0:",
                f"{ind}    raise ScriptExit()"]

    # ---- tests --------------------------------------------------------------------------
    def cond(self, node: A.Expr, guard: tuple[A.Loc, str], ind: str) -> tuple[Lines, str]:
        """(lines, test): the lines evaluate the test, ``test`` is the Python expression
        to branch on. The rules are ExprCompiler.condition's."""
        if isinstance(node, A.Call):
            return self.call(node, ind), "r > 0"
        if isinstance(node, A.Unary) and node.op == "!" and isinstance(node.operand, A.Call):
            return self.call(node.operand, ind), "r < 0"
        if len(ind) > 4 * MAX_INDENT:
            return self.closure_test(node, guard, ind)
        if isinstance(node, A.RouteCall):
            cell = self.bind(self.comp.route_cell(node))
            return self.guarded(ind, f"r = {cell}[0](ctx)", guard=guard) + [
                f"{ind}ctx.extra[{RETCODE_KEY!r}] = r"], "r > 0"
        if isinstance(node, A.Unary) and node.op == "!" and _is_boolean(node.operand):
            lines, test = self.cond(node.operand, guard, ind)
            return lines, f"not ({test})"
        if isinstance(node, A.Binary) and node.op in ("&&", "||"):
            lines, test = self.operand(node.left, guard, ind)
            right, rtest = self.operand(node.right, guard, ind + "    ")
            if test != "t":
                lines.append(f"{ind}t = {test}")
            lines += [f"{ind}if {'t' if node.op == '&&' else 'not t'}:", *right]
            if rtest != "t":
                lines.append(f"{ind}    t = {rtest}")
            return lines, "t"
        if isinstance(node, A.Binary) and node.op in ("==", "!="):
            neg = "not " if node.op == "!=" else ""
            inline = self.equal_test(node, guard, ind)
            if inline is not None:
                return inline[0], neg + inline[1]
        if isinstance(node, A.Binary) and node.op in ("=~", "!~") and isinstance(node.right, A.Const):
            get, search = self.bind(self.comp.expr(node.left)), self.comp.const_regex(node.right).search
            match = (f"t = a is not None and {self.bind(search)}"
                     f"(a if a.__class__ is str else to_str(a)) is not None")
            return (self.guarded(ind, f"a = {get}(ctx)", match, guard=guard),
                    "t" if node.op == "=~" else "not t")
        return self.closure_test(node, guard, ind)

    def operand(self, node: A.Expr, guard: tuple[A.Loc, str], ind: str) -> tuple[Lines, str]:
        """An operand of && / ||: a test, or a value's C truth (non-zero)."""
        if _is_boolean(node):
            return self.cond(node, guard, ind)
        nonzero = self.bind(self.comp.nonzero(node))
        return self.guarded(ind, f"t = {nonzero}(ctx)", guard=guard), "t"

    def equal_test(self, node: A.Binary, guard: tuple[A.Loc, str],
                   ind: str) -> tuple[Lines, str] | None:
        """`X == $null` and `X == "const"` (ExprCompiler._test's and const_equal's rules)."""
        left, right = node.left, node.right
        special = (A.Myself, A.IpLit)
        if isinstance(left, special) or isinstance(right, special):
            return None
        if isinstance(right, A.Null) or isinstance(left, A.Null):
            other = left if isinstance(right, A.Null) else right
            if isinstance(other, A.Null):
                return None
            get = self.bind(self.comp.expr(other))
            return self.guarded(ind, f"t = {get}(ctx) is None", guard=guard), "t"
        const, other = (right, left) if isinstance(right, A.Const) else (left, right)
        if (not isinstance(const, A.Const) or isinstance(other, A.Const) or _is_method(other)):
            return None
        get = self.bind(self.comp.expr(other))
        c, cls = self.bind(const.value), self.bind(const.value.__class__)
        return (self.guarded(ind, f"a = {get}(ctx)", guard=guard),
                f"(a == {c} if a.__class__ is {cls} else equal(a, {c}))")

    def closure_test(self, node: A.Expr, guard: tuple[A.Loc, str], ind: str) -> tuple[Lines, str]:
        """Any other test: its (unguarded) closure, faulting at ``guard``'s place."""
        test = self.bind(self.comp.condition(node))
        return self.guarded(ind, f"t = {test}(ctx)", guard=guard), "t"

    def guarded(self, ind: str, *lines: str, guard: tuple[A.Loc, str]) -> Lines:
        """``lines`` with Python errors turned into a ScriptFault at the test's place."""
        loc, what = self.bind(guard[0]), self.bind(guard[1])
        return [f"{ind}try:",
                *(f"{ind}    {line}" for line in lines),
                f"{ind}except _PASS:",
                f"{ind}    raise",
                f"{ind}except Exception as exc:",
                f'{ind}    raise ScriptFault({loc}, f"{{{what}}} failed: {{exc!r}}") from exc']
