"""Recursive-descent parser: a route block's tokens -> AST (kemi_core.native.ast).

Operator precedence follows Kamailio's grammar (lowest first): ``||``; ``&&``; ``|``; ``&``;
``^``; ``<< >>``; ``== != =~ !~ eq ne ieq ine``; ``< > <= >=``; ``+ -``; ``* / % mod``;
unary ``! - ~ defined (int) (str)``. Note that ``|`` binds looser than ``==``, as in Kamailio.
"""

from __future__ import annotations

from kemi_core.config.model import RouteBlock
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native.lexer import Tok, Token, tokenize

#: Core keywords readable in expressions (Kamailio's "core keywords").
KEYWORDS = frozenset({
    "method", "uri", "status", "src_ip", "dst_ip", "src_port", "dst_port", "proto", "af",
    "from_uri", "to_uri", "msg:len", "retcode",
})
#: Bare words that stand for a constant in comparisons (proto == UDP, af == INET).
CONSTANT_WORDS = {
    "udp": "UDP", "tcp": "TCP", "tls": "TLS", "sctp": "SCTP", "ws": "WS", "wss": "WSS",
    "inet": "INET", "inet6": "INET6",
}
_STATEMENT_WORDS = frozenset({"if", "else", "switch", "case", "default", "while", "return",
                              "exit", "drop", "break", "route"})

_BINARY_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"||"}),
    frozenset({"&&"}),
    frozenset({"|"}),
    frozenset({"&"}),
    frozenset({"^"}),
    frozenset({"<<", ">>"}),
    frozenset({"==", "!=", "=~", "!~", "eq", "ne", "ieq", "ine"}),
    frozenset({"<", ">", "<=", ">="}),
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%", "mod"}),
)
_WORD_OPERATORS = frozenset({"eq", "ne", "ieq", "ine", "mod"})


class Parser:
    def __init__(self, tokens: list[Token], file: str) -> None:
        self.toks = tokens
        self.i = 0
        self.file = file
        self.breakable = 0  # depth of switch/while around the current statement
        self.in_args = 0  # inside a function call's argument list

    # ---- token helpers ----------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.toks[min(self.i + n, len(self.toks) - 1)]

    def loc(self, tok: Token | None = None) -> A.Loc:
        t = tok or self.tok
        return A.Loc(self.file, t.line, t.column)

    def error(self, reason: str, tok: Token | None = None) -> ConfigError:
        t = tok or self.tok
        return ConfigError(reason, self.file, t.line, t.column)

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind is not Tok.EOF:
            self.i += 1
        return t

    def is_op(self, op: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind is Tok.OP and t.text == op

    def is_word(self, word: str, tok: Token | None = None) -> bool:
        t = tok or self.tok
        return t.kind is Tok.IDENT and t.text == word

    def expect(self, op: str, what: str = "") -> Token:
        if not self.is_op(op):
            raise self.error(f"expected '{op}'{what} but found {_describe(self.tok)}")
        return self.next()

    # ---- statements ---------------------------------------------------------------------
    def parse_body(self) -> tuple[A.Stmt, ...]:
        stmts = self.statements(until_brace=False)
        if self.tok.kind is not Tok.EOF:
            raise self.error(f"unexpected {_describe(self.tok)}")
        return stmts

    def statements(self, until_brace: bool) -> tuple[A.Stmt, ...]:
        out: list[A.Stmt] = []
        while True:
            t = self.tok
            if t.kind is Tok.EOF:
                if until_brace:
                    raise self.error("missing '}' at end of block")
                return tuple(out)
            if self.is_op("}"):
                if until_brace:
                    return tuple(out)
                raise self.error("unbalanced '}'")
            if self.is_word("case") or self.is_word("default"):
                return tuple(out)  # ends a switch case body; the switch parser checks context
            out.extend(self.statement())

    def block_or_statement(self) -> tuple[A.Stmt, ...]:
        if self.is_op("{"):
            self.next()
            body = self.statements(until_brace=True)
            if not self.is_op("}"):
                raise self.error(f"'case' or 'default' outside switch: {_describe(self.tok)}")
            self.next()
            return body
        return self.statement()

    def statement(self) -> tuple[A.Stmt, ...]:
        t = self.tok
        if self.is_op(";"):
            self.next()
            return ()
        if self.is_op("{"):
            return self.block_or_statement()
        if t.kind is Tok.PV:
            return (self.assignment(),)
        if t.kind is Tok.IDENT:
            word = t.text
            if word == "if":
                return (self.if_stmt(),)
            if word == "switch":
                return (self.switch_stmt(),)
            if word == "while":
                return (self.while_stmt(),)
            if word == "else":
                raise self.error("'else' without 'if'")
            if word in ("return", "exit"):
                return (self.return_stmt(),)
            if word == "drop":
                self.next()
                self.optional_empty_parens(allow_value=True)
                self.end_statement()
                return (A.Drop(self.loc(t)),)
            if word == "break":
                self.next()
                if not self.breakable:
                    raise self.error("'break' outside 'switch' or 'while' (use 'return')", t)
                self.end_statement()
                return (A.Break(self.loc(t)),)
            call = self.call_expr()
            self.end_statement()
            return (A.ExprStmt(call.loc, call),)
        raise self.error(f"expected a statement but found {_describe(t)}")

    def end_statement(self) -> None:
        if not self.is_op(";"):
            raise self.error(f"expected ';' but found {_describe(self.tok)}")
        self.next()

    def optional_empty_parens(self, allow_value: bool = False) -> A.Expr | None:
        if not self.is_op("("):
            return None
        self.next()
        value: A.Expr | None = None
        if not self.is_op(")"):
            if not allow_value:
                raise self.error("expected ')'")
            value = self.expression()
        self.expect(")")
        return value

    def assignment(self) -> A.Assign:
        t = self.next()
        if t.text == "$null":
            raise self.error("cannot assign to $null", t)
        op_tok = self.tok
        if not (self.is_op("=") or self.is_op(":=")):
            raise self.error(f"expected '=' or ':=' after {t.text} but found {_describe(op_tok)}")
        self.next()
        value = self.expression()
        self.end_statement()
        return A.Assign(self.loc(t), A.Pv(self.loc(t), t.text), op_tok.text, value)

    def condition(self) -> A.Expr:
        self.expect("(", " before the condition")
        cond = self.expression()
        self.expect(")", " after the condition")
        return cond

    def if_stmt(self) -> A.If:
        t = self.next()
        cond = self.condition()
        then = self.block_or_statement()
        orelse: tuple[A.Stmt, ...] | None = None
        if self.is_word("else"):
            self.next()
            orelse = self.block_or_statement()
        return A.If(self.loc(t), cond, then, orelse)

    def while_stmt(self) -> A.While:
        t = self.next()
        cond = self.condition()
        self.breakable += 1
        try:
            body = self.block_or_statement()
        finally:
            self.breakable -= 1
        return A.While(self.loc(t), cond, body)

    def switch_stmt(self) -> A.Switch:
        t = self.next()
        subject = self.condition()
        self.expect("{", " to open the switch body")
        cases: list[A.Case] = []
        seen: set[object] = set()
        self.breakable += 1
        try:
            while not self.is_op("}"):
                ct = self.tok
                if self.is_word("case"):
                    self.next()
                    value = self.case_value()
                elif self.is_word("default"):
                    self.next()
                    value = None
                else:
                    raise self.error(f"expected 'case' or 'default' but found {_describe(ct)}")
                key = ("default",) if value is None else (type(value).__name__, value)
                if key in seen:
                    raise self.error(f"duplicate {'default' if value is None else 'case ' + repr(value)}", ct)
                seen.add(key)
                self.expect(":", " after the case value")
                body = self.statements(until_brace=True)
                cases.append(A.Case(self.loc(ct), value, body))
        finally:
            self.breakable -= 1
        self.next()
        return A.Switch(self.loc(t), subject, tuple(cases))

    def case_value(self) -> int | str:
        neg = False
        if self.is_op("-"):
            self.next()
            neg = True
        t = self.tok
        if t.kind is Tok.INT:
            self.next()
            return -int(t.value) if neg else int(t.value)  # type: ignore[call-overload]
        if t.kind is Tok.STRING and not neg:
            self.next()
            return str(t.value)
        raise self.error(f"a case value must be an integer or a string, not {_describe(t)}")

    def return_stmt(self) -> A.Stmt:
        t = self.next()
        value: A.Expr | None = None
        if not self.is_op(";"):
            if self.is_op("(") and self.is_op(")", self.peek()):  # return(); exit();
                self.next()
                self.next()
            else:
                value = self.expression()
        self.end_statement()
        return A.Return(self.loc(t), value) if t.text == "return" else A.Exit(self.loc(t), value)

    # ---- expressions --------------------------------------------------------------------
    def expression(self, level: int = 0) -> A.Expr:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        ops = _BINARY_LEVELS[level]
        left = self.expression(level + 1)
        while True:
            t = self.tok
            if (t.kind is Tok.OP and t.text in ops) or (
                    t.kind is Tok.IDENT and t.text in _WORD_OPERATORS and t.text in ops):
                self.next()
                right = self.expression(level + 1)
                left = A.Binary(self.loc(t), t.text, left, right)
            else:
                return left

    def unary(self) -> A.Expr:
        t = self.tok
        if t.kind is Tok.OP and t.text in ("!", "-", "~"):
            self.next()
            operand = self.unary()
            if t.text == "-" and isinstance(operand, A.Const) and isinstance(operand.value, int):
                return A.Const(self.loc(t), -operand.value)
            return A.Unary(self.loc(t), t.text, operand)
        if self.is_word("defined"):
            self.next()
            operand = self.unary()
            if not isinstance(operand, A.Pv):
                raise self.error("'defined' needs a pseudo-variable", t)
            return A.Unary(self.loc(t), "defined", operand)
        if (self.is_op("(") and self.peek().kind is Tok.IDENT and self.peek().text in ("int", "str")
                and self.is_op(")", self.peek(2))):
            self.next()
            cast = self.next().text
            self.next()
            return A.Unary(self.loc(t), f"({cast})", self.unary())
        return self.primary()

    def primary(self) -> A.Expr:
        t = self.tok
        loc = self.loc(t)
        if self.is_op("("):
            self.next()
            inner = self.expression()
            self.expect(")")
            return inner
        if t.kind is Tok.INT:
            self.next()
            return A.Const(loc, int(t.value))  # type: ignore[call-overload]
        if t.kind is Tok.STRING:
            self.next()
            text = str(t.value)
            while self.tok.kind is Tok.STRING:  # "abc" "def" is one string
                text += str(self.next().value)
            return A.Const(loc, text)
        if t.kind is Tok.PV:
            self.next()
            return A.Null(loc) if t.text == "$null" else A.Pv(loc, t.text)
        if t.kind is Tok.IP:
            self.next()
            return A.IpLit(loc, t.text)
        if t.kind is Tok.IDENT:
            word = t.text
            if self.is_op("(", self.peek()) or word == "route":
                if word in ("strlen", "strempty"):
                    self.next()
                    self.expect("(")
                    inner = self.expression()
                    self.expect(")")
                    return A.Unary(loc, word, inner)
                return self.call_expr()
            if word in _STATEMENT_WORDS:
                raise self.error(f"'{word}' cannot be used in an expression")
            if word == "myself":
                self.next()
                return A.Myself(loc)
            if word in KEYWORDS:
                self.next()
                return A.Keyword(loc, word)
            if word.lower() in CONSTANT_WORDS:
                self.next()
                return A.Const(loc, CONSTANT_WORDS[word.lower()])
            if self.in_args:
                # A bare word as a function argument is taken as a string, e.g. an
                # undefined #!define name or t_on_failure(NAME).
                self.next()
                return A.Const(loc, word)
            raise self.error(f"unknown identifier '{word}' (missing quotes or '(' ?)")
        raise self.error(f"expected an expression but found {_describe(t)}")

    def call_expr(self) -> A.Call | A.RouteCall:
        t = self.next()
        if t.kind is not Tok.IDENT:
            raise self.error(f"expected a function name but found {_describe(t)}", t)
        loc = self.loc(t)
        if t.text in _STATEMENT_WORDS and t.text != "route":
            raise self.error(f"'{t.text}' cannot be called like a function", t)
        if t.text == "route":
            return self.route_call(loc)
        args: list[A.Expr] = []
        if self.is_op("("):
            self.next()
            self.in_args += 1
            try:
                if not self.is_op(")"):
                    args.append(self.expression())
                    while self.is_op(","):
                        self.next()
                        args.append(self.expression())
            finally:
                self.in_args -= 1
            self.expect(")", f" to close the arguments of {t.text}()")
        return A.Call(loc, t.text, tuple(args))

    def route_call(self, loc: A.Loc) -> A.RouteCall:
        self.expect("(", " after route")
        t = self.tok
        if t.kind in (Tok.IDENT, Tok.STRING, Tok.INT):
            self.next()
            name = str(t.value)
        else:
            raise self.error(f"route() needs a route name, not {_describe(t)}")
        self.expect(")", " after the route name")
        if not name:
            raise self.error("route() with an empty name", t)
        return A.RouteCall(loc, name)


def _describe(t: Token) -> str:
    if t.kind is Tok.EOF:
        return "the end of the block"
    if t.kind is Tok.STRING:
        return f"string {t.text!r}"
    return f"{t.kind.value} '{t.text}'"


def parse_text(text: str, file: str, line: int = 1, column: int = 1) -> tuple[A.Stmt, ...]:
    """Parse a block body (raises ConfigError with file:line:column)."""
    return Parser(tokenize(text, file, line, column), file).parse_body()


#: Block kinds as the config parser names them; `route` without a name is request_route.
BLOCK_KINDS = frozenset({"request_route", "route", "reply_route", "onreply_route",
                         "failure_route", "branch_route", "branch_failure_route",
                         "onsend_route", "event_route"})


def parse_block(block: RouteBlock) -> A.Route:
    """Parse one RouteBlock, normalising Kamailio's aliases for the main routes."""
    loc = A.Loc(block.file, block.line, 1)
    kind, name = block.kind, block.name
    if kind not in BLOCK_KINDS:
        raise ConfigError(f"unknown route block type {kind!r}", block.file, block.line)
    if kind == "route" and name in (None, "", "0", "DEFAULT_ROUTE"):
        kind, name = "request_route", None
    elif kind == "onreply_route" and name in (None, "", "0"):
        kind, name = "reply_route", None
    elif kind == "event_route" and name and name.startswith("tm:branch-failure:"):
        kind, name = "branch_failure_route", name[len("tm:branch-failure:"):]
    if kind in ("route", "failure_route", "branch_route", "branch_failure_route",
                "event_route") and not name:
        raise ConfigError(f"{kind} needs a name: {kind}[NAME]", block.file, block.line)
    if name is not None:
        name = name.strip().strip('"')
    body = parse_text(block.body, block.file, block.body_line, block.body_column)
    return A.Route(loc, kind, name, body)
