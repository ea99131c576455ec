"""Routes written as one generated function (kemi_core/native/codegen.py): every shape it
writes inline keeps the closures' rules (faults' places, $rc, negation, 0 = exit, return, exit,
drop, break), and the tests it does not inline still run through their closures."""

from __future__ import annotations

import logging

import pytest

from kemi_core.native import ast as A
from kemi_core.native import codegen
from kemi_core.native.check import check_blocks
from kemi_core.native.compiler import Compiler, _is_void
from kemi_core.native.parser import parse_text


def marks(rec) -> list[tuple[str, ...]]:
    return [a for n, a in rec.calls if n == "mark"]


# ---- one differential table: the generated test against ExprCompiler.condition's closure ----
CONDITIONS = [
    "ret(3)", "ret(-3)", "!ret(3)", "!ret(-3)", "true_fn()", "!false_fn()",
    "$rU == $null", "$rU != $null", "$avp(none) == $null", "$null == $avp(none)",
    "$null != $rU", '$rU == "bob"', '$rU != "bob"', '"bob" == $rU', '$rU == "BOB"',
    '$var(n) == 3', '$var(n) == "3"', '$var(s) == 3', '$var(s) != 4', '$avp(none) == ""',
    "$avp(none) == 0", 'method == "invite"', 'method != "INVITE"', "uri == myself",
    "src_ip != 10.0.0.0/8", '$ua =~ "^test"', "$var(n) > 2", "$var(n)", "$var(zero)",
    "ret(2) && ret(-2)", "ret(-2) || ret(2)", "ret(2) && $var(n)", "$var(zero) || !ret(-1)",
    "!(ret(2) && ret(-2))", "!(ret(-2) || $rU == $null)", "ret(2) && (ret(-1) || $rU == \"bob\")",
    "(ret(2) || ret(-1)) && !($var(n) == 4)", "ret(2) == 1", "route(R)", "!route(R)",
    "route(R) && ret(2)", "$var(n) && $var(zero) || $var(s)", '$ua !~ "^test"',
    '$avp(none) =~ "x"', '$avp(none) !~ "x"', '$var(n) =~ "^3$"', '$rU =~ $var(s)',
    'ret(2) && $ua =~ "TEST"',
]


@pytest.mark.parametrize("cond", CONDITIONS)
def test_generated_test_matches_the_closure(h, rec, cond: str) -> None:
    sub = h.block("return -4;", "route", "R")
    rc, ctx = h.run(f'$var(n) = 3; $var(s) = "3"; $var(zero) = 0;'
                    f'if ({cond}) {{ mark("t", $rc); }} else {{ mark("f", $rc); }}', sub)
    generated = marks(rec)[-1]
    # the same test as ExprCompiler's closure, on a fresh message with the same variables
    comp = Compiler(h.core, {"R"})
    closure = comp.condition(parse_text(f"if ({cond}) exit;", "t.cfg", 1, 1)[0].cond,
                             (A.Loc("t.cfg", 1, 1), "if condition"))
    if "R" in comp.route_cells:
        comp.route_cells["R"][0] = h.core.engine.program.get("route", "R")
    ctx2 = h.ctx()
    for name, value in (("n", 3), ("s", "3"), ("zero", 0)):
        h.core.pv.parse(f"$var({name})").set(ctx2, value)
    expected = "t" if closure(ctx2) else "f"
    assert rc == 1 and generated == (expected, str(ctx2.extra.get("retcode", 1)))


# ---- calls: places, $rc, 0 = exit -----------------------------------------------------------
def test_call_statement_fault_has_its_place(h, rec, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        rc, ctx = h.run('mark("a");\n   boom(); mark("no");')
    assert rc == -1 and marks(rec) == [("a",)]
    assert ctx.fault is not None and ctx.fault.startswith("test.cfg:2:4: boom() failed: ZeroDivisionError")


@pytest.mark.parametrize("test", ["boom()", "!boom()", "ret(1) && boom()", "ret(-1) || !boom()"])
def test_call_test_fault_has_the_call_place(h, rec, test: str) -> None:
    rc, ctx = h.run(f"if ({test}) mark();")
    col = 5 + test.index("boom")
    assert rc == -1 and ctx.fault is not None
    assert ctx.fault.startswith(f"test.cfg:1:{col}: boom() failed: ZeroDivisionError")


@pytest.mark.parametrize("test", ["$var(a) / 0 == 1", "$var(a) / 0 == $null", "$var(a) / 0",
                                  '$var(a) / 0 =~ "x"', '$var(a) / 0 !~ $var(b)',
                                  "ret(1) && $var(a) / 0", "$var(a) / 0 > 1"])
def test_value_test_fault_has_the_if_place(h, rec, test: str) -> None:
    rc, ctx = h.run(f"\n  if ({test}) mark();")
    assert rc == -1 and ctx.fault is not None
    assert ctx.fault.startswith("test.cfg:2:3: if condition failed: ZeroDivisionError")


@pytest.mark.parametrize("body", ['ret(0); mark("no");', 'if (ret(0)) mark("no"); mark("no");',
                                  'if (!ret(0)) mark("no"); mark("no");',
                                  'if (ret(1) && ret(0)) mark("no"); mark("no");'])
def test_function_returning_zero_ends_the_script(h, rec, body: str) -> None:
    sub = h.block(body, "route", "S")
    rc, ctx = h.run('route(S); mark("no-main");', sub)
    assert rc == 1 and marks(rec) == [] and not ctx.dropped


def test_retcode_after_negated_call_and_route_call(h, rec) -> None:
    sub = h.block("return -5;", "route", "R")
    h.run('if (!ret(-2)) mark($rc); route(R); mark($rc); if (route(R)) mark("t"); else mark($rc);',
          sub)
    assert marks(rec) == [("-2",), ("-5",), ("-5",)]


def test_non_int_results_are_normalised(h, rec) -> None:
    h.run('true_fn(); mark($rc); if (false_fn()) mark("no"); else mark($rc);')
    assert marks(rec) == [("1",), ("-1",)]


# ---- return, exit, drop, break --------------------------------------------------------------
def test_return_values_from_nested_ifs(h, rec) -> None:
    sub = h.block('if (ret(1)) { if (ret(-1)) { return 9; } else { $var(x) = 6; return $var(x); } }'
                  "return 2;", "route", "R")
    rc, _ = h.run("route(R); return $rc;", sub)
    assert rc == 6


def test_return_zero_value_exits(h, rec) -> None:
    sub = h.block("$var(z) = 0; if (ret(1)) { return $var(z); } mark(\"no\");", "route", "R")
    rc, _ = h.run('route(R); mark("no");', sub)
    assert rc == 1 and marks(rec) == []


@pytest.mark.parametrize("kind", ["request_route", "failure_route"])
def test_exit_in_a_main_route_returns_one(h, rec, kind: str) -> None:
    blk = h.block('if (ret(1)) { mark("a"); exit; } mark("no");', kind, None if kind == "request_route" else "F")
    eng = h.engine(blk)
    name = "ksr_request_route" if kind == "request_route" else "failure_route:F"
    assert eng.run(name, h.ctx()) == 1 and marks(rec) == [("a",)]


def test_exit_in_a_sub_route_unwinds(h, rec) -> None:
    sub = h.block('if (ret(1)) { exit; } mark("no");', "route", "S")
    rc, _ = h.run('if (ret(1)) { route(S); } mark("no");', sub)
    assert rc == 1 and marks(rec) == []


def test_drop_in_an_if(h, rec) -> None:
    rc, ctx = h.run('if (ret(1)) { drop; } mark("no");')
    assert rc == 0 and ctx.dropped and marks(rec) == []


def test_break_in_ifs_inside_while_and_switch(h, rec) -> None:
    h.run("$var(i) = 0; while ($var(i) < 10) { $var(i) = $var(i) + 1; "
          "if (ret(1)) { if ($var(i) == 3) { break; } } } mark($var(i));"
          'switch ($rm) { case "INVITE": if (ret(1)) { mark("c"); break; } mark("no"); '
          'default: mark("no"); } mark("end");')
    assert marks(rec) == [("3",), ("c",), ("end",)]


def test_else_if_chain(h, rec) -> None:
    for method, want in (("INVITE", "i"), ("BYE", "b"), ("ACK", "o")):
        rec.calls.clear()
        h.run('if (is_method("INVITE")) mark("i"); else if (is_method("BYE")) mark("b");'
              ' else mark("o");', raw=h.INVITE.replace("INVITE", method))
        assert marks(rec) == [(want,)]


# ---- shapes --------------------------------------------------------------------------------
def test_deep_nesting_falls_back_to_fresh_functions(h, rec) -> None:
    depth = codegen.MAX_INDENT + 20
    body = "if (ret(1)) {" * depth + 'mark("deep");' + "}" * depth
    deep_and = " && ".join(["ret(1)"] * 80)
    rc, _ = h.run(body + f'if ({deep_and}) mark("and");')
    assert rc == 1 and marks(rec) == [("deep",), ("and",)]


def test_blocks_without_a_return_are_void(h) -> None:
    comp = Compiler(h.core, set())
    void = comp.generated(parse_text('mark(); if (ret(1)) { mark(); } else { exit; }', "t", 1, 1))
    valued = comp.generated(parse_text("if (ret(1)) { return 2; }", "t", 1, 1))
    assert _is_void(void) and not _is_void(valued)


def test_errors_in_nested_statements_are_all_collected(h) -> None:
    errors = check_blocks(h.core, [h.block('if (ret(1)) {\n nosuch(); if (nope()) { mark(); }\n'
                                           ' mark(1, 2, 3, 4); } else { alsono(); }')])
    assert [(e.line, str(e).split(": ", 1)[1]) for e in errors] == [
        (2, "unknown function 'nosuch' (is its module loaded?)"),
        (2, "unknown function 'nope' (is its module loaded?)"),
        (3, "mark() takes 0 to 3 arguments, 4 given"),
        (3, "unknown function 'alsono' (is its module loaded?)")]


def test_syntax_only_unknown_functions_fault_when_run(h, rec) -> None:
    from kemi_core.native.compiler import compile_routes
    routes = [A.Route(A.Loc("t.cfg", 1, 1), "request_route", None,
                      parse_text("if (nosuch()) mark(); other();", "t.cfg", 1, 1))]
    program, comp = compile_routes(h.core, routes, syntax_only=True)
    assert [n for n, _, _ in comp.unknown] == ["nosuch", "other"]
    with pytest.raises(Exception, match="unknown function 'nosuch'"):
        program.get("request_route", None)(h.ctx())  # type: ignore[misc]


# ---- assignments ---------------------------------------------------------------------------
def test_assignments_inline_and_through_closures(h, rec, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="kemi.native"):
        h.run('if (ret(1)) {\n  $var(a) = ret(-2); $var(b) = "x" + $var(a); $ru = "bad";\n'
              '  $avp(m) = 1; $avp(m) = 2; $avp(m) := 3; }'
              'switch ($rm) { case "INVITE": $var(c) = 5; $ru = "bad2"; }'
              'mark($var(a), $var(b), $var(c)); mark($avp(m), $ru);')
    assert marks(rec) == [("-2", "x-2", "5"), ("3", "sip:bob@127.0.0.1:5060;transport=udp")]
    assert "test.cfg:2:47: assignment to $ru failed" in caplog.text
    assert "test.cfg:3:87: assignment to $ru failed" in caplog.text


def test_assigned_call_returning_zero_exits_inline(h, rec) -> None:
    sub = h.block('if (ret(1)) { $var(a) = ret(0); } mark("no");', "route", "S")
    rc, _ = h.run('route(S); mark("no");', sub)
    assert rc == 1 and marks(rec) == []


def test_branch_flags_by_argument_count(h, rec) -> None:
    """setbflag(f) works on branch 0, setbflag(f, b) on branch b: the call site calls the
    function for its argument count (by_args), the value-position call too."""
    rc, ctx = h.run('append_branch("sip:x@127.0.0.2"); setbflag(6); setbflag(2, 1);'
                    'if (isbflagset(6) && !isbflagset(2) && isbflagset(2, 1)) mark("b");'
                    '$var(x) = isbflagset(6, 1); resetbflag(6); mark($var(x), isbflagset(6));')
    assert ctx.bflags == 0 and marks(rec) == [("b",), ("-1", "0")]


def test_generated_frames_have_one_line(h, rec) -> None:
    """Tracebacks through generated routes stay valid (every instruction on line 1) and the
    script's place is the fault's."""
    import traceback

    from kemi_core.native import codegen

    if not codegen._LINE_TABLE_FORMAT_KNOWN:
        pytest.skip("this Python's location table layout is not the one written")
    comp = Compiler(h.core, set())
    fn = comp.generated(parse_text('mark(); if (ret(1)) { mark(); boom(); }', "t", 1, 1))
    assert {line for _, _, line in fn.__code__.co_lines()} == {1}
    try:
        fn(h.ctx())
    except Exception as exc:  # noqa: BLE001 - the fault itself is what is looked at
        frames = traceback.extract_tb(exc.__traceback__)
        assert [f.lineno for f in frames if f.filename == "<native block>"] == [1]
        assert str(exc).startswith("t:1:31: boom() failed")
    else:
        pytest.fail("boom() did not fault")
