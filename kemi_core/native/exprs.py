"""Expressions -> closures ``f(ctx) -> int | str | None``, built once at compile time."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from kemi_core.engine import ScriptDrop, ScriptExit
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native import values as V
from kemi_core.native.calls import CallCompiler, ScriptFault
from kemi_core.pv import PvError, PvSpec
from kemi_core.sip.uri import parse_uri

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

# A compiled if/while test.
Cond = Callable[["MsgContext"], bool]

Fn = Callable[["MsgContext"], Any]

#: The last function or route return code ($rc, $retcode, $?) lives here in ctx.extra.
RETCODE_KEY = "retcode"
_PASS = (ScriptExit, ScriptDrop, ScriptFault)
_RETCODE_SPECS = frozenset({"$rc", "$retcode", "$?"})
_URI_KEYWORDS = frozenset({"uri", "from_uri", "to_uri"})


def _retcode(ctx: MsgContext) -> Any:
    return ctx.extra.get(RETCODE_KEY, 1)


def _ruri(ctx: MsgContext) -> Any:
    return ctx.msg.ruri if ctx.msg.is_request else None


def _from_uri(ctx: MsgContext) -> Any:
    try:
        return ctx.msg.from_.uri_text
    except Exception:
        return None


def _to_uri(ctx: MsgContext) -> Any:
    try:
        return ctx.msg.to.uri_text
    except Exception:
        return None


def _status(ctx: MsgContext) -> Any:
    return None if ctx.msg.is_request else ctx.msg.status


def _af(ctx: MsgContext) -> str:
    return "INET6" if ":" in ctx.rcv.src_ip else "INET"


_KEYWORD_GETTERS: dict[str, Fn] = {
    "method": lambda ctx: ctx.msg.method,
    "uri": _ruri,
    "status": _status,
    "src_ip": lambda ctx: ctx.rcv.src_ip,
    "dst_ip": lambda ctx: ctx.rcv.dst_ip,
    "src_port": lambda ctx: ctx.rcv.src_port,
    "dst_port": lambda ctx: ctx.rcv.dst_port,
    "proto": lambda ctx: ctx.rcv.proto.upper(),
    "af": _af,
    "from_uri": _from_uri,
    "to_uri": _to_uri,
    "msg:len": lambda ctx: len(ctx.msg.to_bytes()),
    "retcode": _retcode,
}


def _host_is_myself(ctx: MsgContext, value: Any) -> bool:
    """`X == myself`: a SIP URI as Kamailio's `uri == myself` takes it (a missing port is the
    default one, the transport is not compared), or a bare host/IP (any port)."""
    if value is None:
        return False
    text = V.to_str(value).strip()
    if text[:4].lower() == "sip:" or text[:5].lower() == "sips:":
        try:
            uri = parse_uri(text)
        except Exception:
            return False
        return ctx.core.myself.cfg_uri(uri)
    if text[:4].lower() in ("tel:", "tels"):
        return False
    return ctx.core.is_myself(text)


def _ip_network(text: str, loc: A.Loc) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    addr = text.replace("[", "").replace("]", "")
    try:
        return ipaddress.ip_network(addr, strict=False)
    except ValueError:
        raise ConfigError(f"invalid IP address or network {text!r}", loc.file, loc.line, loc.column)


def _in_network(net: ipaddress.IPv4Network | ipaddress.IPv6Network, value: Any) -> bool:
    if value is None:
        return False
    try:
        return ipaddress.ip_address(V.to_str(value).strip("[]")) in net
    except ValueError:
        return False


class _UnknownPv:
    """Stands for a module's variable in syntax-only checks; never run."""

    writable = True

    def __init__(self, spec: str, loc: A.Loc) -> None:
        self.name = spec
        self.text = spec
        self.loc = loc

    def get(self, ctx: MsgContext) -> Any:
        raise RuntimeError(f"unknown pseudo-variable {self.text}")

    def set(self, ctx: MsgContext, value: Any) -> None:
        raise RuntimeError(f"unknown pseudo-variable {self.text}")


class ExprCompiler(CallCompiler):
    """Compiles expressions; statement compilation builds on it (compiler.Compiler)."""

    def pv(self, spec: str, loc: A.Loc) -> PvSpec | _UnknownPv:
        try:
            return self.core.pv.parse(spec)
        except PvError as exc:
            if self.syntax_only and str(exc).startswith("unknown pseudo-variable"):
                # Syntax-only checks run without the modules that define such variables.
                self.unknown_pvs.append((spec, loc.file, loc.line))
                return _UnknownPv(spec, loc)
            raise ConfigError(str(exc), loc.file, loc.line, loc.column)

    def expr(self, node: A.Expr) -> Fn:
        if isinstance(node, A.Const):
            value = node.value
            return lambda ctx: value
        if isinstance(node, A.Null):
            return lambda ctx: None
        if isinstance(node, A.Pv):
            if node.spec in _RETCODE_SPECS:
                return _retcode
            return self.pv(node.spec, node.loc).get
        if isinstance(node, A.Keyword):
            return _KEYWORD_GETTERS[node.name]
        if isinstance(node, (A.Myself, A.IpLit)):
            raise self.err(node.loc, "'myself' and IP addresses can only be compared with == or !=")
        if isinstance(node, A.Call):
            return self.bool_call(node)
        if isinstance(node, A.RouteCall):
            run = self.route_runner(node)
            return lambda ctx: 1 if run(ctx) > 0 else 0
        if isinstance(node, A.Unary):
            return self.unary(node)
        if isinstance(node, A.Binary):
            return self.binary(node)
        raise self.err(node.loc, f"unsupported expression {type(node).__name__}")

    def assigned(self, node: A.Expr) -> Fn:
        """The value an assignment stores. Kamailio's rule: when the value is one function or
        ``route()`` call (also once its optimiser has dropped neutral operands such as ``+ 0``
        or ``&& 1``), the variable gets the call's return code (-1, 2, ...); any other use of a
        call in an expression counts 1 or 0."""
        call = _bare_call(node)
        if isinstance(call, A.Call):
            return self.raw_call(call, "value")
        if isinstance(call, A.RouteCall):
            return self.route_runner(call)
        return self.expr(node)

    def condition(self, node: A.Expr, guard: tuple[A.Loc, str] | None = None) -> Callable[[MsgContext], bool]:
        """What if/while test: functions by Kamailio's >0 rule, values as int > 0.

        With ``guard`` (place, what), Python errors raised while testing become ScriptFaults
        there; the closures for calls and comparisons do that themselves (no wrapper)."""
        if isinstance(node, A.Call):
            return cast(Cond, self.raw_call(node, "cond"))  # faults with its own place
        if isinstance(node, A.Unary) and node.op == "!" and isinstance(node.operand, A.Call):
            return cast(Cond, self.raw_call(node.operand, "notcond"))
        if isinstance(node, A.Binary) and node.op in ("&&", "||"):
            left, right = self.nonzero(node.left), self.nonzero(node.right)
            if node.op == "&&":
                fn: Callable[[MsgContext], bool] = lambda ctx: left(ctx) and right(ctx)  # noqa: E731
            else:
                fn = lambda ctx: left(ctx) or right(ctx)  # noqa: E731
            return fn if guard is None else self.guarded(guard[0], fn, guard[1])
        if isinstance(node, A.RouteCall):
            run = self.route_runner(node)
            sub: Callable[[MsgContext], bool] = lambda ctx: run(ctx) > 0  # noqa: E731
            return sub if guard is None else self.guarded(guard[0], sub, guard[1])
        if isinstance(node, A.Unary) and node.op == "!" and _is_boolean(node.operand):
            inner = self.condition(node.operand, guard)
            return lambda ctx: not inner(ctx)
        if isinstance(node, A.Binary) and node.op in _TEST_OPS:
            return self.test(node, guard)
        fn = self.expr(node)
        test: Callable[[MsgContext], bool] = lambda ctx: V.truth(fn(ctx))  # noqa: E731
        return test if guard is None else self.guarded(guard[0], test, guard[1])

    def guarded(self, loc: A.Loc, fn: Callable[[MsgContext], Any], what: str) -> Callable[[MsgContext], Any]:
        """Wrap an expression so Python errors in it become ScriptFaults with its place."""
        def run(ctx: MsgContext) -> Any:
            try:
                return fn(ctx)
            except _PASS:
                raise
            except Exception as exc:
                raise ScriptFault(loc, f"{what} failed: {exc!r}") from exc
        return run

    def nonzero(self, node: A.Expr) -> Callable[[MsgContext], bool]:
        """An operand of && / ||: C truth (non-zero), functions by their > 0 rule."""
        if _is_boolean(node):
            return self.condition(node)
        fn = self.expr(node)
        return lambda ctx: V.to_int(fn(ctx)) != 0

    def unary(self, node: A.Unary) -> Fn:
        op = node.op
        if op == "defined":
            assert isinstance(node.operand, A.Pv)
            get = self.expr(node.operand)
            return lambda ctx: 0 if get(ctx) is None else 1
        inner = self.expr(node.operand)
        if op == "!":
            return lambda ctx: 0 if V.to_int(inner(ctx)) else 1
        if op == "-":
            return lambda ctx: -V.to_int(inner(ctx))
        if op == "~":
            return lambda ctx: ~V.to_int(inner(ctx))
        if op == "strlen":
            return lambda ctx: len(V.to_str(inner(ctx)))
        if op == "strempty":
            return lambda ctx: 1 if V.to_str(inner(ctx)) == "" else 0
        if op == "(int)":
            return lambda ctx: V.to_int(inner(ctx))
        if op == "(str)":
            return lambda ctx: V.to_str(inner(ctx))
        raise self.err(node.loc, f"unknown unary operator {op!r}")

    def binary(self, node: A.Binary) -> Fn:
        op = node.op
        if op in ("&&", "||"):
            cond = self.condition(node)
            return lambda ctx: 1 if cond(ctx) else 0
        if op in _TEST_OPS:
            test = self.test(node)
            return lambda ctx: 1 if test(ctx) else 0
        left, right = self.expr(node.left), self.expr(node.right)
        if op == "+":
            return lambda ctx: V.plus(left(ctx), right(ctx))
        ints = _INT_OPS.get(op)
        if ints is None:
            raise self.err(node.loc, f"unknown operator {op!r}")
        return lambda ctx: ints(V.to_int(left(ctx)), V.to_int(right(ctx)))

    def test(self, node: A.Binary, guard: tuple[A.Loc, str] | None = None) -> Callable[[MsgContext], bool]:
        """A comparison as a closure returning a bool (guarded when ``guard`` is given)."""
        op = node.op
        if op in ("==", "!=") and guard is not None:
            fused = self.const_equal(node, guard)
            if fused is not None:
                return fused
        fn = self._test(node)
        return fn if guard is None else self.guarded(guard[0], fn, guard[1])

    def const_equal(self, node: A.Binary, guard: tuple[A.Loc, str]) -> Callable[[MsgContext], bool] | None:
        """`value == "const"` (or != ) with the guard in the same closure, and the common case
        (a str value beside a str constant, an int beside an int) compared directly; anything
        else goes through V.equal as the general rule does."""
        const_side, other = node.right, node.left
        if not isinstance(const_side, A.Const):
            const_side, other = node.left, node.right
        if (not isinstance(const_side, A.Const) or isinstance(other, (A.Const, A.Null, A.Myself, A.IpLit))
                or _is_method(other)):
            return None
        c = const_side.value
        cls = c.__class__
        get = self.expr(other)
        want = node.op == "=="
        loc, what = guard
        equal = V.equal

        def eq_const(ctx: MsgContext) -> bool:
            try:
                a = get(ctx)
            except _PASS:
                raise
            except Exception as exc:
                raise ScriptFault(loc, f"{what} failed: {exc!r}") from exc
            if a.__class__ is cls:
                return (a == c) is want
            return equal(a, c) is want
        return eq_const

    def _test(self, node: A.Binary) -> Callable[[MsgContext], bool]:
        op = node.op
        if op in ("==", "!=") and (isinstance(node.left, (A.Myself, A.IpLit))
                                   or isinstance(node.right, (A.Myself, A.IpLit))):
            return self.special_compare(node)
        if op in ("=~", "!~"):
            return self.regex_match(node)
        left, right = self.expr(node.left), self.expr(node.right)
        if op in ("==", "!="):
            if isinstance(node.left, A.Null) or isinstance(node.right, A.Null):
                # `X == $null` tests for null itself: "" is not $null.
                def eq(ctx: MsgContext) -> bool:
                    return left(ctx) is None and right(ctx) is None
            elif _is_method(node.left) or _is_method(node.right):
                def eq(ctx: MsgContext) -> bool:
                    a, b = left(ctx), right(ctx)
                    return a is not None and b is not None and V.to_str(a).upper() == V.to_str(b).upper()
            else:
                def eq(ctx: MsgContext) -> bool:
                    return V.equal(left(ctx), right(ctx))
            if op == "==":
                return eq
            return lambda ctx: not eq(ctx)
        if op in ("eq", "ne"):
            want = op == "eq"
            return lambda ctx: (V.to_str(left(ctx)) == V.to_str(right(ctx))) == want
        if op in ("ieq", "ine"):
            want = op == "ieq"
            return lambda ctx: (V.to_int(left(ctx)) == V.to_int(right(ctx))) == want
        if op in ("<", ">", "<=", ">="):
            return lambda ctx: V.compare(op, left(ctx), right(ctx))
        raise self.err(node.loc, f"unknown operator {op!r}")

    def special_compare(self, node: A.Binary) -> Callable[[MsgContext], bool]:
        """`uri == myself`, `src_ip != 10.0.0.0/8` and the like."""
        special, other = node.right, node.left
        if isinstance(node.left, (A.Myself, A.IpLit)):
            special, other = node.left, node.right
        if isinstance(other, (A.Myself, A.IpLit)):
            raise self.err(node.loc, "cannot compare two addresses/myself with each other")
        get = self.expr(other)
        negate = node.op == "!="
        test: Callable[[MsgContext], bool]
        if isinstance(special, A.Myself):
            def test(ctx: MsgContext) -> bool:
                return _host_is_myself(ctx, get(ctx))
        else:
            assert isinstance(special, A.IpLit)
            net = _ip_network(special.text, special.loc)

            def test(ctx: MsgContext) -> bool:
                return _in_network(net, get(ctx))
        if negate:
            return lambda ctx: not test(ctx)
        return test

    def const_regex(self, node: A.Const) -> re.Pattern[str]:
        try:
            return V.compile_regex(V.to_str(node.value))
        except re.error as exc:
            raise self.err(node.loc, f"invalid regular expression: {exc}")

    def regex_match(self, node: A.Binary) -> Callable[[MsgContext], bool]:
        left = self.expr(node.left)
        want = node.op == "=~"
        if isinstance(node.right, A.Const):
            search = self.const_regex(node.right).search

            def match(ctx: MsgContext) -> bool:
                v = left(ctx)
                return (v is not None and search(V.to_str(v)) is not None) == want
            return match
        right = self.expr(node.right)

        def dyn_match(ctx: MsgContext) -> bool:
            v = left(ctx)
            rx = V.cached_regex(V.to_str(right(ctx)))
            return (v is not None and rx.search(V.to_str(v)) is not None) == want
        return dyn_match


#: Comparisons: compiled by ``test`` into closures returning a bool.
_TEST_OPS = frozenset({"==", "!=", "=~", "!~", "<", ">", "<=", ">=", "eq", "ne", "ieq", "ine"})
_BOOLEAN_OPS = frozenset({"&&", "||", "==", "!=", "=~", "!~", "<", ">", "<=", ">=",
                          "eq", "ne", "ieq", "ine"})
_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": V.c_div,
    "%": V.c_mod,
    "mod": V.c_mod,
    "|": lambda a, b: a | b,
    "&": lambda a, b: a & b,
    "^": lambda a, b: a ^ b,
    "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b,
}


def _is_boolean(node: A.Expr) -> bool:
    """Whether the value is already 0/1, so `!` may negate the condition directly."""
    if isinstance(node, (A.Call, A.RouteCall)):
        return True
    if isinstance(node, A.Binary):
        return node.op in _BOOLEAN_OPS
    return isinstance(node, A.Unary) and node.op in ("!", "defined")


#: Operands Kamailio's expression optimiser removes: op -> neutral constants on the left,
#: on the right (``0 + x``, ``x - 0``, ``x * 1``, ``x && 1``, ``x || 0`` ... are just ``x``).
_NEUTRAL: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "+": ((0,), (0,)), "-": ((), (0,)), "*": ((1,), (1,)), "/": ((), (1,)),
    "|": ((0,), (0,)), "&&": ((1,), (1,)), "||": ((0,), (0,)),
}


def _is_int_const(node: A.Expr, values: tuple[int, ...]) -> bool:
    return isinstance(node, A.Const) and isinstance(node.value, int) and node.value in values


def _bare_call(node: A.Expr) -> A.Call | A.RouteCall | None:
    """The call ``node`` amounts to once neutral operands are dropped, or None."""
    while isinstance(node, A.Binary) and node.op in _NEUTRAL:
        left_neutral, right_neutral = _NEUTRAL[node.op]
        if _is_int_const(node.right, right_neutral):
            node = node.left
        elif _is_int_const(node.left, left_neutral):
            node = node.right
        else:
            return None
    return node if isinstance(node, (A.Call, A.RouteCall)) else None


def _is_method(node: A.Expr) -> bool:
    return isinstance(node, A.Keyword) and node.name == "method"
