"""Odd input: line endings, BOM, include columns, and arbitrary text never crashing the parser."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.config import parse_config, parse_config_text
from kemi_core.errors import ConfigError


def test_crlf_line_endings() -> None:
    text = ('#!define LVL 3\r\ndebug=LVL\r\n#!ifdef NOPE\r\ndebug=9\r\n#!endif\r\n'
            'log_prefix="x"\r\nlisten=udp:127.0.0.1:5060\r\nrequest_route {\r\n  exit;\r\n}\r\n')
    cfg = parse_config_text(text)
    assert (cfg.debug, cfg.log_prefix, cfg.listen[0].port) == (3, "x", 5060)
    assert cfg.routes[0].line == 8


def test_byte_order_mark() -> None:
    assert parse_config_text("\ufeff#!KAMAILIO\ndebug=4\n").debug == 4


def test_include_in_mid_line_keeps_the_column(tmp_path: Path) -> None:
    (tmp_path / "x.cfg").write_text("exit;")
    main = tmp_path / "k.cfg"
    main.write_text('request_route { include_file "x.cfg" drop; }\n')
    r = parse_config(main).routes[0]
    lines = r.body.split("\n")
    assert lines[1] == "exit;"
    assert lines[2].index("drop") == len('request_route { include_file "x.cfg" ')
    assert r.locate(3) == (str(main), 1)


_ALPHABET = st.sampled_from(list("ab =;:\"'#/*{}[]()$!\n\\.,0123456789") + [
    "#!ifdef A\n", "#!endif\n", "#!else\n", "#!define A 1\n", "debug", "listen", "route",
    "request_route", "modparam", "loadmodule", "include_file", "udp:", "/*", "*/", "//",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_arbitrary_text_gives_config_or_located_error(text: str) -> None:
    try:
        parse_config_text(text, source="fuzz.cfg")
    except ConfigError as exc:
        assert exc.file is not None
        assert exc.line is not None and exc.line >= 1
