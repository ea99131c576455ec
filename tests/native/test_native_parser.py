"""Parser: every construct to its AST node, and every syntax error with file:line:column."""

from __future__ import annotations

import pytest

from kemi_core.config.model import RouteBlock
from kemi_core.errors import ConfigError
from kemi_core.native import ast as A
from kemi_core.native.parser import parse_block, parse_text


def one(text: str) -> A.Stmt:
    stmts = parse_text(text, "f.cfg")
    assert len(stmts) == 1
    return stmts[0]


def cond_of(text: str) -> A.Expr:
    node = one(f"if ({text}) exit;")
    assert isinstance(node, A.If)
    return node.cond


def test_calls_with_arguments() -> None:
    node = one('sl_send_reply("404", "Not here");')
    assert isinstance(node, A.ExprStmt) and isinstance(node.expr, A.Call)
    assert node.expr.name == "sl_send_reply"
    assert [a.value for a in node.expr.args] == ["404", "Not here"]  # type: ignore[union-attr]
    node = one("t_relay();")
    assert node.expr.args == ()  # type: ignore[union-attr]
    node = one("force_rport;")  # Kamailio accepts a call without parentheses
    assert node.expr.name == "force_rport"  # type: ignore[union-attr]
    node = one("f($var(x), 3, -2, UNDEFINED_NAME, \"a\" \"b\");")
    args = node.expr.args  # type: ignore[union-attr]
    assert isinstance(args[0], A.Pv) and args[1].value == 3 and args[2].value == -2
    assert args[3].value == "UNDEFINED_NAME" and args[4].value == "ab"
    node = one("sl.sl_send_reply(\"200\", \"OK\");")
    assert node.expr.name == "sl.sl_send_reply"  # type: ignore[union-attr]


def test_route_calls() -> None:
    for text in ("route(RELAY);", 'route("RELAY");'):
        node = one(text)
        assert isinstance(node.expr, A.RouteCall) and node.expr.name == "RELAY"  # type: ignore[union-attr]
    assert one("route(1);").expr.name == "1"  # type: ignore[union-attr]


def test_if_else_chain_and_single_statements() -> None:
    node = one('if (a()) { b(); } else if (c()) d(); else { e(); f(); }')
    assert isinstance(node, A.If) and len(node.then) == 1
    inner = node.orelse[0]  # type: ignore[index]
    assert isinstance(inner, A.If) and len(inner.orelse) == 2  # type: ignore[arg-type]
    node = one("if (!has_totag()) return;")
    assert isinstance(node.cond, A.Unary) and node.cond.op == "!"  # type: ignore[union-attr]


def test_switch_cases_default_and_fallthrough() -> None:
    node = one('switch ($var(rc)) { case -1: case -3: a(); exit; case -2: b(); break; '
               'case "x": ; default: c(); }')
    assert isinstance(node, A.Switch)
    assert [c.value for c in node.cases] == [-1, -3, -2, "x", None]
    assert node.cases[0].body == () and len(node.cases[1].body) == 2
    assert isinstance(node.cases[2].body[1], A.Break)


def test_while_return_exit_drop_break() -> None:
    node = one("while ($var(i) < 10) { $var(i) = $var(i) + 1; if ($var(i) == 5) break; }")
    assert isinstance(node, A.While) and len(node.body) == 2
    assert one("return;").value is None  # type: ignore[union-attr]
    assert one("return();").value is None  # type: ignore[union-attr]
    assert one("return(-1);").value.value == -1  # type: ignore[union-attr]
    assert one("return 2;").value.value == 2  # type: ignore[union-attr]
    assert isinstance(one("return $var(x);").value, A.Pv)  # type: ignore[union-attr]
    assert isinstance(one("exit;"), A.Exit) and isinstance(one("exit();"), A.Exit)
    assert isinstance(one("drop;"), A.Drop) and isinstance(one("drop();"), A.Drop)


def test_assignments() -> None:
    node = one('$var(x) = "a$ru";')
    assert isinstance(node, A.Assign) and node.op == "=" and node.value.value == "a$ru"  # type: ignore[union-attr]
    node = one("$avp(x) := 1;")
    assert node.op == ":="  # type: ignore[union-attr]
    node = one("$du = $null;")
    assert isinstance(node.value, A.Null)  # type: ignore[union-attr]
    node = one('$ru = "sip:" + $rU + "@" + $rd\n   + ":5060";')
    assert isinstance(node.value, A.Binary) and node.value.op == "+"  # type: ignore[union-attr]


def test_precedence_follows_kamailio() -> None:
    e = cond_of("a() || b() && c()")
    assert e.op == "||" and e.right.op == "&&"  # type: ignore[union-attr]
    e = cond_of("$var(a) + 2 * 3 == 7")
    assert e.op == "==" and e.left.op == "+" and e.left.right.op == "*"  # type: ignore[union-attr]
    # `|` binds looser than `==` in Kamailio's grammar.
    e = cond_of("$var(a) | 1 == 1")
    assert e.op == "|" and e.right.op == "=="  # type: ignore[union-attr]
    e = cond_of("$var(a) < 3 == 1")
    assert e.op == "==" and e.left.op == "<"  # type: ignore[union-attr]
    e = cond_of("-$var(a) mod 3 ieq 2")
    assert e.op == "ieq" and e.left.op == "mod" and e.left.left.op == "-"  # type: ignore[union-attr]
    e = cond_of("!(a() || b())")
    assert e.op == "!" and e.operand.op == "||"  # type: ignore[union-attr]


def test_keywords_myself_ips_and_operators() -> None:
    e = cond_of('method == "INVITE" && uri == myself && src_ip != 10.0.0.0/8')
    assert isinstance(e.left.left.left, A.Keyword)  # type: ignore[union-attr]
    assert isinstance(e.left.right.right, A.Myself)  # type: ignore[union-attr]
    assert isinstance(e.right.right, A.IpLit)  # type: ignore[union-attr]
    e = cond_of("proto == UDP && af == inet6 && dst_port == 5060 && msg:len > 10")
    assert e.right.left.name == "msg:len"  # type: ignore[union-attr]
    e = cond_of("defined $var(x) && strlen($var(x)) > 2 && !strempty($rU)")
    assert e.left.left.op == "defined"  # type: ignore[union-attr]
    e = cond_of("(int)$var(x) == 1 && (str)$var(y) eq \"1\"")
    assert e.left.left.op == "(int)"  # type: ignore[union-attr]
    assert cond_of('status =~ "[12][0-9][0-9]"').op == "=~"  # type: ignore[union-attr]
    assert cond_of("$ua !~ \"x\"").op == "!~"  # type: ignore[union-attr]


def test_parse_block_normalises_kinds_and_positions() -> None:
    def rb(kind: str, name: str | None) -> RouteBlock:
        return RouteBlock(file="k.cfg", line=7, kind=kind, name=name, body="exit;",
                          body_line=7, body_column=20)
    assert parse_block(rb("route", None)).kind == "request_route"
    assert parse_block(rb("route", "0")).kind == "request_route"
    assert parse_block(rb("onreply_route", None)).kind == "reply_route"
    r = parse_block(rb("event_route", "tm:branch-failure:RTF"))
    assert (r.kind, r.name) == ("branch_failure_route", "RTF")
    assert parse_block(rb("route", '"quoted"')).name == "quoted"
    body = parse_block(rb("route", "X")).body
    assert (body[0].loc.line, body[0].loc.column) == (7, 20)
    with pytest.raises(ConfigError, match="needs a name"):
        parse_block(rb("failure_route", None))
    with pytest.raises(ConfigError, match="unknown route block type"):
        parse_block(rb("nonsense_route", None))


@pytest.mark.parametrize(("text", "where", "reason"), [
    ("a()", (1, 4), "expected ';'"),
    ("exit }", (1, 6), "expected an expression"),
    ("if a() exit;", (1, 4), "expected '('"),
    ("if (a() exit;", (1, 9), "expected ')'"),
    ("else a();", (1, 1), "'else' without 'if'"),
    ("break;", (1, 1), "'break' outside"),
    ("if (a()) { b();", (1, 16), "missing '}'"),
    ("a(); }", (1, 6), "unbalanced '}'"),
    ("$var(x) == 1;", (1, 9), "expected '=' or ':='"),
    ("$null = 1;", (1, 1), "cannot assign to $null"),
    ("switch ($var(x)) { foo: a(); }", (1, 20), "expected 'case' or 'default'"),
    ("switch ($var(x)) { case $var(y): a(); }", (1, 25), "case value must be"),
    ("switch ($var(x)) { case 1: a(); case 1: b(); }", (1, 33), "duplicate case 1"),
    ("switch ($var(x)) { default: a(); default: b(); }", (1, 34), "duplicate default"),
    ("switch ($var(x)) { case 1 a(); }", (1, 27), "expected ':'"),
    ("if ($var(x) == ) exit;", (1, 16), "expected an expression"),
    ("if (foo) exit;", (1, 5), "unknown identifier 'foo'"),
    ("if (route) exit;", (1, 10), "expected '('"),
    ("route();", (1, 7), "needs a route name"),
    ("if (defined 1) exit;", (1, 5), "'defined' needs a pseudo-variable"),
    ("$var(x) = while;", (1, 11), "cannot be used in an expression"),
    ("f(1, 2;", (1, 7), "to close the arguments"),
    ("\n\n   x = 1;", (3, 6), "expected ';'"),
    ("case 1: a();", (1, 1), "unexpected identifier 'case'"),
    ("if (a()) { case 1: }", (1, 12), "'case' or 'default' outside switch"),
    ("12;", (1, 1), "expected a statement"),
])
def test_syntax_errors_have_file_line_column(text: str, where: tuple[int, int], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "f.cfg")
    err = info.value
    assert err.reason and reason in err.reason, err.reason
    assert (err.file, err.line, err.column) == ("f.cfg", *where), str(err)
