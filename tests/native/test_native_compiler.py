"""Compiled routes run against real SIP messages: statements, expressions, Kamailio's rules."""

from __future__ import annotations

import logging

import pytest

from kemi_core.errors import ConfigError, ScriptError


# ---- function calls and Kamailio's return-code rules ----------------------------------------
def test_function_arguments_are_fixed_up(h, rec) -> None:
    rc, _ = h.run('sl_send_reply("404", "Not $ru here"); sl_send_reply(486, "Busy");'
                  '$var(code) = 503; sl_send_reply("$var(code)", "x"); '
                  'sl_send_reply($var(code) + 1, $var(code));')
    assert rc == 1
    # Format strings reach the module raw: its fixup interpolates, not the language.
    assert rec.calls == [("sl_send_reply", (404, "Not $ru here")), ("sl_send_reply", (486, "Busy")),
                         ("sl_send_reply", (503, "x")), ("sl_send_reply", (504, "503"))]


def test_compile_errors_for_functions(h) -> None:
    cases = {
        "nosuch(1);": ("unknown function 'nosuch'", 1, 1),
        'x();\n  sl_send_reply("404");': ("unknown function 'x'", 1, 1),
        '\n  sl_send_reply("404");': ("sl_send_reply() takes 2 arguments, 1 given", 2, 3),
        'mark(1, 2, 3, 4);': ("mark() takes 0 to 3 arguments, 4 given", 1, 1),
        'sl_send_reply("abc", "x");': ("argument 1 of sl_send_reply() must be an integer", 1, 15),
        'setflag("x");': ("argument 1 of setflag() must be an integer", 1, 9),
    }
    for body, (reason, line, col) in cases.items():
        with pytest.raises(ScriptError) as info:
            h.engine(h.block(body))
        assert f"test.cfg:{line}:{col}: {reason}" in str(info.value)


def test_truth_rules_and_zero_ends_the_script(h, rec) -> None:
    rc, _ = h.run('if (ret(5)) mark("pos"); if (ret(-3)) mark("neg"); else mark("else");'
                  'if (!ret(-1)) mark("not-neg"); if (true_fn() && !false_fn()) mark("bools");'
                  'ret(0); mark("never");')
    assert rc == 1
    marks = [a[0] for n, a in rec.calls if n == "mark"]
    assert marks == ["pos", "else", "not-neg", "bools"]


def test_retcode_holds_the_last_result(h, rec) -> None:
    h.run('ret(-7); $var(a) = $rc; ret(3); $var(b) = $retcode; mark($var(a), $var(b));')
    assert rec.calls[-1] == ("mark", ("-7", "3"))


@pytest.mark.parametrize(("value", "expected"), [
    # one call (or route call) assigned: its return code, as Kamailio 5.6 stores it
    ("ret(-2)", "-2"), ("ret(2)", "2"), ("(ret(-1))", "-1"), ("route(R)", "-3"),
    # Kamailio's optimiser drops neutral operands first: still the return code
    ("ret(-2) + 0", "-2"), ("0 + ret(-2)", "-2"), ("ret(-2) - 0", "-2"), ("ret(-2) * 1", "-2"),
    ("1 * ret(-2)", "-2"), ("ret(-2) / 1", "-2"), ("ret(-2) | 0", "-2"), ("ret(-2) && 1", "-2"),
    ("1 && ret(-2)", "-2"), ("ret(-2) || 0", "-2"), ("0 || ret(-2)", "-2"),
    # any other use counts the call as 1 (> 0) or 0
    ("ret(-2) + 5", "5"), ("ret(2) + 5", "6"), ("!ret(-2)", "1"), ("-ret(-2)", "0"),
    ("ret(-2) == -2", "0"), ("0 - ret(2)", "-1"), ("ret(-2) ^ 0", "0"), ("(int)ret(-2)", "0"),
])
def test_assigned_call_stores_its_return_code(h, rec, value: str, expected: str) -> None:
    sub = h.block("return(-3);", "route", "R")
    h.run(f"$var(x) = {value}; mark($var(x), $rc);", sub)
    assert rec.calls[-1][1][0] == expected


def test_assigned_call_returning_zero_ends_the_script(h, rec) -> None:
    rc, _ = h.run('$var(x) = ret(0); mark("never");')
    assert rc == 1 and "mark" not in rec.names()


def test_module_dot_function_names(h, rec) -> None:
    h.run('sl.sl_send_reply("200", "OK");')
    assert rec.calls == [("sl_send_reply", (200, "OK"))]
    with pytest.raises(ScriptError, match="unknown function 'tm.sl_send_reply'"):
        h.engine(h.block('tm.sl_send_reply("200", "OK");'))


# ---- routes, return, exit, drop -------------------------------------------------------------
def test_route_calls_and_return_values(h, rec) -> None:
    sub = h.block("if (is_method(\"INVITE\")) return(-2); return 3;", "route", "R", line=10)
    plain = h.block("mark(\"in-plain\");", "route", "PLAIN", line=20)
    rc, _ = h.run("route(R); $var(r) = $rc; if (route(R)) mark(\"true\"); else mark(\"false\");"
                  "route(PLAIN); mark($var(r), $rc); return $var(r);", sub, plain)
    assert rc == -2
    assert [a for n, a in rec.calls if n == "mark"] == [("false",), ("in-plain",), ("-2", "1")]


def test_bare_return_gives_one_and_return_zero_exits(h, rec) -> None:
    sub = h.block("return(0);", "route", "Z")
    rc, _ = h.run('route(Z); mark("after");', sub)
    assert rc == 1 and "mark" not in rec.names()
    assert h.run("return;")[0] == 1
    assert h.run("mark();")[0] == 1


def test_exit_unwinds_nested_routes(h, rec) -> None:
    inner = h.block('mark("inner"); exit; mark("no");', "route", "IN")
    outer = h.block('route(IN); mark("no-outer");', "route", "OUT")
    rc, ctx = h.run('route(OUT); mark("no-main");', inner, outer)
    assert rc == 1 and not ctx.dropped
    assert [a for n, a in rec.calls if n == "mark"] == [("inner",)]


def test_drop_marks_the_context(h, rec) -> None:
    sub = h.block("drop;", "route", "D")
    rc, ctx = h.run('route(D); mark("no");', sub)
    assert rc == 0 and ctx.dropped and rec.calls == []


def test_recursive_routes_are_allowed_and_bounded(h) -> None:
    loop = h.block("$var(n) = $var(n) + 1; if ($var(n) < 20) route(L); return $var(n);",
                   "route", "L")
    rc, _ = h.run("$var(n) = 0; route(L); return $rc;", loop)
    assert rc == 20


def test_unknown_and_duplicate_routes_are_compile_errors(h) -> None:
    with pytest.raises(ScriptError, match=r"test.cfg:3:5: route\(NOPE\): no route\[NOPE\]"):
        h.engine(h.block("\n\n    route(NOPE);"))
    with pytest.raises(ScriptError, match=r"route\[A\] is defined twice"):
        h.engine(h.block("exit;"), h.block("exit;", "route", "A"), h.block("exit;", "route", "A"))


# ---- switch and while -----------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("-1", ["m1", "m3"]), ("-3", ["m3"]), ("-2", ["m2"]), ('"abc"', ["str"]), ("7", ["def"]),
    ('"-2"', ["m2"]), ("$null", ["def"]),
])
def test_switch(h, rec, value: str, expected: list[str]) -> None:
    h.run(f"$var(v) = {value};" """
        switch ($var(v)) {
            case -1:
                mark("m1");
            case -3:
                mark("m3");
                break;
            case -2:
                mark("m2");
                break;
            case "abc":
                mark("str");
                break;
            default:
                mark("def");
        }
        mark("end");""")
    assert [a[0] for n, a in rec.calls if n == "mark"] == [*expected, "end"]


def test_switch_without_default_and_return_inside(h, rec) -> None:
    rc, _ = h.run('switch ($rm) { case "INVITE": return 4; case "BYE": mark(); } mark("x");')
    assert rc == 4 and rec.calls == []
    rc, _ = h.run('switch ($rm) { case "BYE": mark(); } mark("x");')
    assert rec.calls == [("mark", ("x",))]


def test_while_and_break(h, rec) -> None:
    h.run("$var(i) = 0; while ($var(i) < 10) { $var(i) = $var(i) + 1; "
          "if ($var(i) == 4) break; } mark($var(i));")
    assert rec.calls == [("mark", ("4",))]


def test_runaway_while_is_stopped(h, rec, caplog) -> None:
    h.core.config.extra["max_while_loops"] = 5
    with caplog.at_level(logging.ERROR, logger="kemi.native"):
        h.run('$var(i) = 0; while (1) { $var(i) = $var(i) + 1; } mark($var(i));')
    assert rec.calls == [("mark", ("5",))]
    assert "test.cfg:1:14: runaway while" in caplog.text


# ---- assignments ----------------------------------------------------------------------------
def test_assignments_to_message_and_script_variables(h) -> None:
    rc, ctx = h.run('$ru = "sip:" + $rU + "@example.org" + ";x=y";'
                    '$du = "sip:10.1.1.1:5070"; $var(s) = "a$ru"; $var(i) = 2 + 3;'
                    '$avp(a) = 1; $avp(a) = 2; $avp(b) = 1; $avp(b) = 2; $avp(b) := 3;')
    assert rc == 1
    assert ctx.msg.ruri == "sip:bob@example.org;x=y"
    assert ctx.dst_uri == "sip:10.1.1.1:5070"
    assert ctx.avps["a"] == [2, 1] and ctx.avps["b"] == [3]
    rc, ctx = h.run('$du = "sip:10.1.1.1"; $du = $null;')
    assert ctx.dst_uri is None


def test_assignment_values_read_back(h, rec) -> None:
    h.run('$var(s) = "a$ru"; $var(n) = $null; mark($var(s), $(ru{uri.user}), $(ru{uri.user}{s.len}));')
    assert rec.calls == [("mark", ("a$ru", "bob", "3"))]


def test_read_only_and_unknown_pvs_are_compile_errors(h) -> None:
    with pytest.raises(ScriptError, match=r"test.cfg:1:1: \$ci cannot be assigned"):
        h.engine(h.block('$ci = "x";'))
    with pytest.raises(ScriptError, match=r"test.cfg:1:5: unknown pseudo-variable \$nosuch"):
        h.engine(h.block("if ($nosuch == 1) exit;"))


def test_failed_assignment_is_logged_and_the_route_goes_on(h, rec, caplog) -> None:
    """As in Kamailio 5.6: the error is logged with its place, the variable keeps its value."""
    with caplog.at_level(logging.ERROR, logger="kemi.native"):
        rc, _ = h.run('mark("a");\n$ru = "not a uri"; mark($ru);')
    assert rc == 1 and rec.calls == [("mark", ("a",)), ("mark", ("sip:bob@127.0.0.1:5060;transport=udp",))]
    assert "test.cfg:2:1: assignment to $ru failed" in caplog.text


def test_function_exception_is_logged_with_place(h, rec, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="kemi.native"):
        rc, _ = h.run('mark("a");\n  if (boom()) mark("b"); mark("c");')
    assert rc == -1 and rec.calls == [("mark", ("a",)), ("boom", ())]
    assert "test.cfg:2:7: boom() failed" in caplog.text


# ---- expressions ----------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "expected"), [
    ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("7 / 2", "3"), ("-7 / 2", "-3"), ("7 mod 3", "1"),
    ("-7 % 3", "-1"), ("6 | 1", "7"), ("6 & 3", "2"), ("6 ^ 3", "5"), ("1 << 4", "16"),
    ("~0", "-1"), ("-(2)", "-2"), ('"a" + 1', "a1"), ('1 + "2"', "3"), ('"x" + $null', "x"),
    ("$rU + \"@\" + $rd", "bob@127.0.0.1"), ("3 > 2", "1"), ('"abc" < "abd"', "1"),
    ('"10" == 10', "1"), ('"abc" == "ABC"', "0"), ("$rU == $null", "0"), ("$fn == $null", "0"),
    ("$var(undefined_x) == $null", "0"), ('$avp(none) == $null', "1"), ("!0", "1"), ("!5", "0"),
    ('"a" eq "a"', "1"), ('"01" ieq 1', "1"), ('"01" ine 1', "0"), ('"01" ne "1"', "1"),
    ("defined $avp(none)", "0"), ("defined $ru", "1"), ('strlen("abcd")', "4"),
    ("strempty($avp(none))", "1"), ('strempty("x")', "0"), ('(int)"12abc"', "0"),
    ('(int)"12"', "12"), ("(str)5 + 1", "51"), ('$ua =~ "^TEST"', "1"), ('$ua !~ "^TEST"', "0"),
    ('$rU =~ "^[[:alpha:]]+$"', "1"), ('method == "invite"', "1"), ('method != "INVITE"', "0"),
    ('method =~ "^inv"', "1"), ("uri == myself", "1"), ("from_uri == myself", "0"),
    ("to_uri == myself", "1"), ('"sip:x@127.0.0.1:5060" == myself', "1"),
    ("src_ip == 10.0.0.1", "1"), ("src_ip == 10.0.0.0/8", "1"), ("src_ip != 10.0.0.0/8", "0"),
    ("dst_ip == myself", "1"), ("src_ip == myself", "0"), ("src_port == 5062", "1"),
    ("dst_port == 5060", "1"), ("proto == UDP", "1"), ("proto == tcp", "0"), ("af == INET", "1"),
    ("af == INET6", "0"), ("$si == 10.0.0.1", "1"), ("src_ip == [::1]", "0"),
    ("msg:len > 100", "1"), ("status == $null", "1"), ("is_method(\"INVITE\") + 1", "2"),
    ('$(fu{uri.host}{s.toupper})', "EXAMPLE.COM"), ("1 && 0 || 1", "1"), ("0 && boom()", "0"),
    ("1 || boom()", "1"),
    # null beside an int is 0, beside a string "" (checked against Kamailio 5.6); "" is not $null
    ('$avp(none) == ""', "1"), ("$avp(none) == 0", "1"), ("$avp(none) < 5", "1"),
    ('$avp(none) != "x"', "1"), ('"" == $null', "0"), ('$null == $avp(none)', "1"),
    ('"abc" == 0', "0"), ('"5" < 10', "1"), ("-1 && 1", "1"), ("0 || -2", "1"),
])
def test_expression_values(h, rec, expr: str, expected: str) -> None:
    h.run(f"$var(r) = {expr}; mark($var(r));", raw=h.INVITE.replace("tester", "TESTER 1.0"))
    assert rec.calls[-1] == ("mark", (expected,))


def test_division_by_zero_fails_the_assignment(h, rec, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="kemi.native"):
        rc, _ = h.run("$var(x) = 1 / 0; mark($var(x));")
    assert rc == 1 and "division" in caplog.text and rec.calls == [("mark", ("0",))]


def test_invalid_regex_and_ip_are_compile_errors(h) -> None:
    with pytest.raises(ScriptError, match=r"test.cfg:1:12: invalid regular expression"):
        h.engine(h.block('if ($rU =~ "(") exit;'))
    with pytest.raises(ScriptError, match="invalid IP address"):
        h.engine(h.block("if (src_ip == 300.1.1.1) exit;"))
    with pytest.raises(ScriptError, match="can only be compared"):
        h.engine(h.block("$var(x) = myself;"))


def test_dynamic_regex(h, rec) -> None:
    h.run('$var(re) = "^b.b$"; if ($rU =~ $var(re)) mark("yes");')
    assert rec.calls == [("mark", ("yes",))]


def test_status_in_a_reply_route(h, rec) -> None:
    eng = h.engine(h.block('if (status =~ "[12][0-9][0-9]" && status == "200" && status > 199) '
                           'mark($rs); else drop;', "reply_route"))
    ctx = h.ctx(h.REPLY_200)
    assert eng.run("ksr_reply_route", ctx) == 1
    assert rec.calls == [("mark", ("200",))] and not ctx.dropped


def test_if_on_plain_values_is_greater_than_zero(h, rec) -> None:
    h.run('$var(a) = -1; if ($var(a)) mark("neg"); $var(b) = "3"; if ($var(b)) mark("str3");'
          'if ("abc") mark("abc"); if ($avp(none)) mark("null");')
    assert [a[0] for n, a in rec.calls if n == "mark"] == ["str3"]


def test_compiled_once_not_per_message(h, rec, monkeypatch) -> None:
    import kemi_core.native.parser as parser_mod
    eng = h.engine(h.block('mark("x");'))
    monkeypatch.setattr(parser_mod, "parse_text", lambda *a, **k: pytest.fail("re-parsed"))
    for _ in range(3):
        eng.run("ksr_request_route", h.ctx())
    assert len(rec.calls) == 3


def test_config_error_objects_carry_place(h) -> None:
    from kemi_core.native.check import compile_blocks
    with pytest.raises(ConfigError) as info:
        compile_blocks(h.core, [h.block("\n  nosuch();", line=40)])
    assert (info.value.file, info.value.line, info.value.column) == ("test.cfg", 41, 3)


def test_myself_uri_without_port_means_the_default_port() -> None:
    """Kamailio 5.6: `from_uri == myself` with sip:b@127.0.0.1 (no port) is false on a server
    listening on 127.0.0.1:5070 (the URI means port 5060); a bare address takes any port."""
    from kemi_core.config.model import CoreConfig, ListenAddr
    from kemi_core.native.exprs import _host_is_myself
    from kemi_core.testing import context, offline_core

    core, _ = offline_core(config=CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5070)]))
    ctx = context(core, "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKm\r\n"
                        "From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: m\r\n"
                        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    assert not _host_is_myself(ctx, "sip:b@127.0.0.1")
    assert _host_is_myself(ctx, "sip:b@127.0.0.1:5070")
    assert not _host_is_myself(ctx, "sips:b@127.0.0.1:5060")
    assert _host_is_myself(ctx, "127.0.0.1")
