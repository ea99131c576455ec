"""Route blocks: kinds, names, body text and where each body begins."""

from __future__ import annotations

import textwrap

import pytest

from kemi_core.config import parse_config_text
from kemi_core.config.model import CoreConfig
from kemi_core.errors import ConfigError


def P(text: str, **kw: object) -> CoreConfig:
    return parse_config_text(textwrap.dedent(text).lstrip("\n"), source="t.cfg", **kw)  # type: ignore[arg-type]


def test_every_block_kind() -> None:
    cfg = P("""
        request_route { a(); }
        route[RELAY] { b(); }
        route["QUOTED"] { c(); }
        route[2] { d(); }
        reply_route { e(); }
        onreply_route[MANAGE_REPLY] { f(); }
        failure_route[MANAGE_FAILURE] { g(); }
        branch_route[MANAGE_BRANCH] { h(); }
        branch_failure_route[BF] { i(); }
        onsend_route { j(); }
        event_route[xhttp:request] { k(); }
        event_route [tm:local-request] { l(); }
        event_route[tm:branch-failure:myroute] { m(); }
    """)
    got = [(r.kind, r.name, r.line, r.body.strip()) for r in cfg.routes]
    assert got == [
        ("request_route", None, 1, "a();"),
        ("route", "RELAY", 2, "b();"),
        ("route", "QUOTED", 3, "c();"),
        ("route", "2", 4, "d();"),
        ("reply_route", None, 5, "e();"),
        ("onreply_route", "MANAGE_REPLY", 6, "f();"),
        ("failure_route", "MANAGE_FAILURE", 7, "g();"),
        ("branch_route", "MANAGE_BRANCH", 8, "h();"),
        ("branch_failure_route", "BF", 9, "i();"),
        ("onsend_route", None, 10, "j();"),
        ("event_route", "xhttp:request", 11, "k();"),
        ("event_route", "tm:local-request", 12, "l();"),
        ("event_route", "tm:branch-failure:myroute", 13, "m();"),
    ]


@pytest.mark.parametrize("header, kind", [
    ("route", "request_route"), ("route[0]", "request_route"), ('route["0"]', "request_route"),
    ("onreply_route", "reply_route"), ("onreply_route[0]", "reply_route"),
])
def test_main_route_aliases(header: str, kind: str) -> None:
    r = P(f"{header} {{ exit; }}\n").routes[0]
    assert (r.kind, r.name) == (kind, None)


def test_body_text_and_position() -> None:
    cfg = P("""
        debug=2

        request_route {
            if (is_method("INVITE")) {
                xlog("L_INFO", "brace } in a string { and 'quote'\\n");
            }
            # a comment with a } brace
            /* a { block } comment */
            $var(x) = '}';
        }
        route[NEXT]{exit;}
    """)
    r = cfg.routes[0]
    assert (r.file, r.line, r.body_line, r.body_column) == ("t.cfg", 3, 3, 16)
    lines = r.body.split("\n")
    assert lines[0] == ""
    assert lines[1] == '    if (is_method("INVITE")) {'
    assert lines[2] == "        xlog(\"L_INFO\", \"brace } in a string { and 'quote'\\n\");"
    assert lines[4].strip() == ""  # comment blanked, line kept
    assert lines[5].strip() == ""
    assert lines[6] == "    $var(x) = '}';"
    assert len(lines) == 8
    assert r.line_map == [("t.cfg", n) for n in range(3, 11)]
    assert r.locate(7) == ("t.cfg", 9)
    nxt = cfg.routes[1]
    assert (nxt.name, nxt.body, nxt.line, nxt.body_line, nxt.body_column) == (
        "NEXT", "exit;", 11, 11, 13)


def test_block_comment_column_is_preserved() -> None:
    r = P("request_route { /* x */ exit; }\n").routes[0]
    assert r.body == "         exit; "
    assert r.body_column == 16


def test_pv_with_parens_and_defines_in_body() -> None:
    cfg = P("""
        #!define FLB_NATB 6
        branch_route[B] {
            if($sht(ipban=>$si)!=$null && $(ru{s.len}) > 3) setbflag(FLB_NATB);
        }
    """)
    assert cfg.routes[0].body.strip() == (
        "if($sht(ipban=>$si)!=$null && $(ru{s.len}) > 3) setbflag(6);")


@pytest.mark.parametrize("text, line, reason", [
    ("debug=1\nrequest_route {\n  exit;\n", 2, "unterminated request_route block"),
    ("route[A] { exit; }\n\nroute[A] { drop; }\n", 3, "duplicate route block route[A] (first at t.cfg:1)"),
    ("request_route { exit; }\nroute { exit; }\n", 2, "duplicate route block request_route"),
    ("request_route[X] { exit; }\n", 1, "request_route takes no name"),
    ("reply_route[X] { exit; }\n", 1, "reply_route takes no name"),
    ("debug=1\nevent_route { exit; }\n", 2, "event_route needs a name"),
    ("route[A] exit;\n", 1, "expected '{' to open the route block"),
    ("route[A { exit; }\n", 1, "missing ']'"),
    ("route[] { exit; }\n", 1, "empty block name"),
    ('request_route {\n  xlog("oops);\n}\n', 2, "unterminated string"),
    ("request_route { exit; }\n}\n", 2, "unexpected '}'"),
])
def test_route_errors(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        P(text)
    assert (ei.value.file, ei.value.line) == ("t.cfg", line)
    assert reason in ei.value.reason
