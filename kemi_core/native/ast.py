"""AST of the native routing language. Every node knows where it was written."""

from __future__ import annotations

import attrs


@attrs.frozen
class Loc:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# ---- expressions -------------------------------------------------------------------------
@attrs.frozen
class Const:
    loc: Loc
    value: int | str


@attrs.frozen
class Null:
    """``$null``."""

    loc: Loc


@attrs.frozen
class Pv:
    """A pseudo-variable as written: ``$ru``, ``$var(x)``, ``$(ru{uri.user})``."""

    loc: Loc
    spec: str


@attrs.frozen
class Keyword:
    """A core keyword usable in expressions: method, uri, status, src_ip, proto, ..."""

    loc: Loc
    name: str


@attrs.frozen
class Myself:
    loc: Loc


@attrs.frozen
class IpLit:
    """An IP address or network written bare: ``1.2.3.4``, ``10.0.0.0/8``, ``[::1]``."""

    loc: Loc
    text: str


@attrs.frozen
class Call:
    """A function call by cfg name, with its arguments."""

    loc: Loc
    name: str
    args: tuple[Expr, ...]


@attrs.frozen
class RouteCall:
    """``route(NAME)``: resolved at compile time."""

    loc: Loc
    name: str


@attrs.frozen
class Unary:
    loc: Loc
    op: str  # "!", "-", "~", "defined", "strlen", "strempty", "(int)", "(str)"
    operand: Expr


@attrs.frozen
class Binary:
    loc: Loc
    op: str
    left: Expr
    right: Expr


Expr = Const | Null | Pv | Keyword | Myself | IpLit | Call | RouteCall | Unary | Binary


# ---- statements --------------------------------------------------------------------------
@attrs.frozen
class ExprStmt:
    """A function or route call used as a statement."""

    loc: Loc
    expr: Call | RouteCall


@attrs.frozen
class Assign:
    loc: Loc
    target: Pv
    op: str  # "=" or ":="
    value: Expr


@attrs.frozen
class If:
    loc: Loc
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...] | None


@attrs.frozen
class Case:
    loc: Loc
    value: int | str | None  # None: default
    body: tuple[Stmt, ...]


@attrs.frozen
class Switch:
    loc: Loc
    subject: Expr
    cases: tuple[Case, ...]


@attrs.frozen
class While:
    loc: Loc
    cond: Expr
    body: tuple[Stmt, ...]


@attrs.frozen
class Return:
    loc: Loc
    value: Expr | None


@attrs.frozen
class Exit:
    loc: Loc
    value: Expr | None


@attrs.frozen
class Drop:
    loc: Loc


@attrs.frozen
class Break:
    loc: Loc


Stmt = ExprStmt | Assign | If | Switch | While | Return | Exit | Drop | Break


@attrs.frozen
class Route:
    """One parsed route block."""

    loc: Loc
    kind: str  # request_route, route, reply_route, onreply_route, failure_route, ...
    name: str | None
    body: tuple[Stmt, ...]
