"""Preprocessor: defines, #!ifdef, #!subst, comments, includes, line numbers."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from kemi_core.config import parse_config, parse_config_text
from kemi_core.config.model import CoreConfig
from kemi_core.errors import ConfigError


def P(text: str, **kw: object) -> CoreConfig:
    return parse_config_text(textwrap.dedent(text).lstrip("\n"), source="t.cfg", **kw)  # type: ignore[arg-type]


def body(cfg: CoreConfig, kind: str = "request_route") -> str:
    return next(r.body for r in cfg.routes if r.kind == kind)


# ---- defines -------------------------------------------------------------------------------
def test_define_replaces_identifiers_but_not_strings() -> None:
    cfg = P("""
        #!define MYPORT 5080
        port=MYPORT
        log_prefix="MYPORT "
    """)
    assert cfg.port == 5080
    assert cfg.log_prefix == "MYPORT "
    assert cfg.defines["MYPORT"] == "5080"


def test_define_whole_identifiers_only() -> None:
    cfg = P("""
        #!define FLT 1
        request_route { setflag(FLT); setflag(FLT_X); $var(FLT) = FLT; xlog("FLT"); }
    """)
    assert body(cfg) == ' setflag(1); setflag(FLT_X); $var(FLT) = 1; xlog("FLT"); '


def test_define_string_value_and_nested_defines() -> None:
    cfg = P("""
        #!define HOST "db.local"
        #!define URL HOST
        #!define OUTER URL
        modparam("acc", "db_url", OUTER)
    """)
    assert cfg.modparams[0].value == "db.local"


def test_define_self_reference_does_not_loop() -> None:
    cfg = P("""
        #!define LOOP LOOP
        request_route { LOOP; }
    """)
    assert body(cfg) == " LOOP; "


def test_define_value_trailing_comment_is_dropped() -> None:
    assert P("#!define X 2 # the level\ndebug=X\n").debug == 2


def test_multiline_define_keeps_line_numbers() -> None:
    cfg = P("""
        #!define IDLOOP $var(i) = 0; \\
            while($var(i)<5) { \\
                $var(i) = $var(i) + 1; \\
            }
        loadmodule "sl.so"
        request_route {
            IDLOOP
        }
    """)
    assert cfg.loadmodules[0].line == 5
    r = cfg.routes[0]
    assert r.line == 6
    assert " ".join(r.body.split()) == "$var(i) = 0; while($var(i)<5) { $var(i) = $var(i) + 1; }"
    assert r.body.count("\n") == 2


def test_define_empty_and_def_alias() -> None:
    cfg = P("""
        #!def WITH_X
        #!ifdef WITH_X
        debug=4
        #!endif
    """)
    assert cfg.debug == 4
    assert cfg.defines["WITH_X"] == ""


def test_redefinition_is_an_error_but_trydef_and_redefine_are_not() -> None:
    with pytest.raises(ConfigError) as ei:
        P("#!define A 1\n#!define A 2\n")
    assert (ei.value.file, ei.value.line) == ("t.cfg", 2)
    assert "already defined" in ei.value.reason
    cfg = P("#!define A 1\n#!trydef A 2\n#!trydef B 3\ndebug=A\nchildren=B\n")
    assert (cfg.debug, cfg.children) == (1, 3)
    assert P("#!define A 1\n#!redefine A 2\ndebug=A\n").debug == 2


def test_undef() -> None:
    cfg = P("""
        #!define A
        #!undef A
        #!ifdef A
        debug=5
        #!endif
    """)
    assert cfg.debug == 2
    assert "A" not in cfg.defines


def test_external_defines_like_dash_A() -> None:
    text = "#!ifdef WITH_DEBUG\ndebug=DBG\n#!else\ndebug=1\n#!endif\n"
    assert P(text, defines={"WITH_DEBUG": "", "DBG": "3"}).debug == 3
    assert P(text).debug == 1


def test_predefined_version_and_module_defines() -> None:
    cfg = P("""
        #!ifdef KAMAILIO_5_6
        children=3
        #!endif
        #!ifdef MOD_tm
        debug=4
        #!endif
        loadmodule "modules/tm.so"
        #!ifdef MOD_tm
        fork=no
        #!endif
    """)
    assert cfg.children == 3
    assert cfg.debug == 2  # MOD_tm is defined by the loadmodule, not before it
    assert cfg.fork is False
    assert "MOD_tm" in cfg.defines


def test_bang_bang_prefix() -> None:
    assert P("!!define X 4\ndebug=X\n").debug == 4


# ---- ifdef ---------------------------------------------------------------------------------
def test_nested_ifdef_else() -> None:
    text = """
        #!ifdef A
          #!ifdef B
          debug=1
          #!else
          debug=2
          #!endif
        #!else
          #!ifndef B
          debug=3
          #!else
          debug=4
          #!endif
        #!endif
    """
    assert P(text, defines={"A": "", "B": ""}).debug == 1
    assert P(text, defines={"A": ""}).debug == 2
    assert P(text).debug == 3
    assert P(text, defines={"B": ""}).debug == 4


def test_inactive_region_is_not_parsed() -> None:
    cfg = P("""
        #!ifdef NOPE
          ALTER TABLE acc ADD COLUMN x VARCHAR(64) NOT NULL DEFAULT ''; it's "unbalanced
          include_file "does-not-exist.cfg"
          #!define INSIDE 1
        #!endif
        debug=1
    """)
    assert cfg.debug == 1
    assert "INSIDE" not in cfg.defines


def test_ifdef_inside_route_block() -> None:
    text = """
        request_route {
        #!ifdef WITH_X
            xlog("x");
        #!endif
            exit;
        }
    """
    assert "xlog" in body(P(text, defines={"WITH_X": ""}))
    b = body(P(text))
    assert "xlog" not in b
    assert b.count("\n") == 5  # directive and skipped lines stay as blank lines


# ---- subst ---------------------------------------------------------------------------------
def test_subst_applies_inside_strings_only() -> None:
    cfg = P("""
        #!subst "/DBPASSWD/xyz/"
        modparam("acc", "db_url", "mysql://user:DBPASSWD@localhost/db")
        request_route { DBPASSWD; }
    """)
    assert cfg.modparams[0].value == "mysql://user:xyz@localhost/db"
    assert body(cfg) == " DBPASSWD; "


def test_subst_flags_and_backreferences() -> None:
    cfg = P("""
        #!subst "/a/b/"
        #!subst "/X(\\d)/<\\1>/gi"
        modparam("m", "p", "aaa x1x2")
    """)
    assert cfg.modparams[0].value == "baa <1><2>"


def test_subst_only_affects_later_strings() -> None:
    cfg = P("""
        log_prefix="NAME"
        #!subst "/NAME/value/"
        modparam("m", "p", "NAME")
    """)
    assert cfg.log_prefix == "NAME"
    assert cfg.modparams[0].value == "value"


def test_substdef_defines_the_name_too() -> None:
    cfg = P("""
        #!substdef "!MY_IP!10.0.0.1!g"
        #!substdefs "!MY_DOM!sip.example.com!"
        listen=udp:MY_IP:5060
        alias=MY_DOM
        modparam("m", "p", "MY_IP MY_IP")
        modparam("m", "q", MY_DOM)
    """)
    assert cfg.listen[0].host == "10.0.0.1"
    assert cfg.aliases[0].host == "sip.example.com"
    assert cfg.modparams[0].value == "10.0.0.1 10.0.0.1"
    assert cfg.modparams[1].value == "sip.example.com"
    assert cfg.defines["MY_DOM"] == '"sip.example.com"'


def test_defenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_TEST_LEVEL", "4")
    monkeypatch.setenv("KEMI_TEST_NAME", "k1")
    monkeypatch.delenv("KEMI_TEST_MISSING", raising=False)
    cfg = P("""
        #!defenv LEVEL=KEMI_TEST_LEVEL
        #!defenvs KEMI_TEST_NAME
        #!trydefenv KEMI_TEST_MISSING
        debug=LEVEL
        log_prefix=KEMI_TEST_NAME
    """)
    assert (cfg.debug, cfg.log_prefix) == (4, "k1")
    assert "KEMI_TEST_MISSING" not in cfg.defines
    with pytest.raises(ConfigError) as ei:
        P("debug=1\n#!defenv KEMI_TEST_MISSING\n")
    assert ei.value.line == 2


def test_headers_and_unknown_directive(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kemi.config")
    cfg = P("#!KAMAILIO\n#!KEMI\n#!SER\n#!MAXCOMPAT\n#!frobnicate X\ndebug=1\n")
    assert cfg.debug == 1
    msgs = [r.getMessage() for r in caplog.records if r.name == "kemi.config"]
    assert len(msgs) == 1 and "t.cfg:5" in msgs[0] and "frobnicate" in msgs[0]


# ---- comments ------------------------------------------------------------------------------
def test_comments_do_not_break_strings() -> None:
    cfg = P("""
        # a comment with "a quote
        // another ' one
        log_prefix="x#y//z"  # trailing
        alias=example.com // trailing
        /* block "comment
           over lines */ debug=3
        modparam("tm", "contact", "sip:x@y;transport=tcp") // c
        modparam("rtpproxy", "sock", 'udp:1.2.3.4:5060') # c
        modparam("m", "hash", "a # b /* c */ d")
        request_route {
            xlog("# not a comment // neither\\n"); # a comment
            /* gone */ exit; // gone
        }
    """)
    assert cfg.log_prefix == "x#y//z"
    assert cfg.aliases[0].host == "example.com"
    assert cfg.debug == 3
    assert [m.value for m in cfg.modparams] == [
        "sip:x@y;transport=tcp", "udp:1.2.3.4:5060", "a # b /* c */ d"]
    b = body(cfg)
    assert 'xlog("# not a comment // neither\\n");' in b
    assert "gone" not in b and "# a comment" not in b
    assert cfg.routes[0].line == 10


def test_block_comment_keeps_line_and_column() -> None:
    cfg = P("/* one\n two */ request_route {\nexit; }\n")
    r = cfg.routes[0]
    assert (r.line, r.body_line, r.body_column) == (2, 2, 24)


# ---- includes ------------------------------------------------------------------------------
def test_include_file_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mods.cfg").write_text(
        '# modules\n\nloadmodule "tm.so"\ninclude_file "more.cfg"\nmodparam("tm", "x", 1)\n')
    (tmp_path / "sub" / "more.cfg").write_text('\n#!define FROM_INC 7\nloadmodule "sl.so"\n')
    main = tmp_path / "kamailio.cfg"
    main.write_text('debug=1\ninclude_file "sub/mods.cfg"\nchildren=FROM_INC\n'
                    'loadmodule "rr.so"\n')
    cfg = parse_config(main)
    got = [(Path(m.file).name, m.line, m.name) for m in cfg.loadmodules]
    assert got == [("mods.cfg", 3, "tm"), ("more.cfg", 3, "sl"), ("kamailio.cfg", 4, "rr")]
    assert (Path(cfg.modparams[0].file).name, cfg.modparams[0].line) == ("mods.cfg", 5)
    assert cfg.children == 7


def test_hash_include_and_import_missing(tmp_path: Path) -> None:
    (tmp_path / "a.cfg").write_text("debug=4\n")
    main = tmp_path / "k.cfg"
    main.write_text('#!include_file "a.cfg"\nimport_file "missing.cfg"\n'
                    '#!import_file "missing2.cfg"\nchildren=2\n')
    cfg = parse_config(main)
    assert (cfg.debug, cfg.children) == (4, 2)


def test_subst_rewrites_include_and_import_file_names(tmp_path: Path) -> None:
    """As Kamailio 5.6 does: a wrapper can point an included config's absolute paths (the
    official example's /usr/local/etc/kamailio/...) somewhere else without editing it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "mods.cfg").write_text('loadmodule "tm.so"\n')
    (tmp_path / "real" / "local.cfg").write_text("#!define FROM_LOCAL 3\n")
    main = tmp_path / "k.cfg"
    main.write_text(f'#!subst "!/nonexistent/dir/!{tmp_path}/real/!"\n'
                    'include_file "/nonexistent/dir/mods.cfg"\n'
                    'import_file "/nonexistent/dir/local.cfg"\nchildren=FROM_LOCAL\n')
    cfg = parse_config(main)
    assert [m.name for m in cfg.loadmodules] == ["tm"] and cfg.children == 3


def test_include_error_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "bad.cfg").write_text("debug=1\n\nbogus_param=1\n")
    main = tmp_path / "k.cfg"
    main.write_text('children=2\ninclude_file "bad.cfg"\n')
    with pytest.raises(ConfigError) as ei:
        parse_config(main)
    assert (Path(ei.value.file or "").name, ei.value.line) == ("bad.cfg", 3)


def test_missing_include_is_an_error_at_the_include(tmp_path: Path) -> None:
    main = tmp_path / "k.cfg"
    main.write_text('debug=1\n\n  include_file "nope.cfg"\n')
    with pytest.raises(ConfigError) as ei:
        parse_config(main)
    assert (ei.value.file, ei.value.line) == (str(main), 3)
    assert "nope.cfg" in ei.value.reason


def test_recursive_include_is_stopped(tmp_path: Path) -> None:
    main = tmp_path / "k.cfg"
    main.write_text('include_file "k.cfg"\n')
    with pytest.raises(ConfigError, match="nested more than"):
        parse_config(main)


def test_include_inside_a_route_block(tmp_path: Path) -> None:
    (tmp_path / "checks.cfg").write_text('if (!mf_process_maxfwd_header("10")) {\n    exit;\n}\n')
    main = tmp_path / "k.cfg"
    main.write_text('request_route {\n    include_file "checks.cfg"\n    t_relay();\n}\n')
    r = parse_config(main).routes[0]
    assert "mf_process_maxfwd_header" in r.body and "t_relay();" in r.body
    lines = r.body.split("\n")
    assert len(r.line_map) == len(lines)
    i = next(n for n, s in enumerate(lines, 1) if "exit;" in s)
    assert r.locate(i) == (str(tmp_path / "checks.cfg"), 2)
    j = next(n for n, s in enumerate(lines, 1) if "t_relay" in s)
    assert r.locate(j) == (str(main), 3)


def test_text_includes_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "x.cfg").write_text("debug=5\n")
    assert P('include_file "x.cfg"\n', base_dir=tmp_path).debug == 5
