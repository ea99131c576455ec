"""Every refusal is a ConfigError naming the file and line where the problem was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.config import parse_config, parse_config_text
from kemi_core.errors import ConfigError

CASES = [
    # (config text, line, part of the reason)
    ('debug=1\nlog_prefix="abc\n', 2, "unterminated string"),
    ("debug=1\n/* never closed\n\n", 2, "unterminated comment"),
    ("#!ifdef A\ndebug=1\n", 1, "without a matching #!endif"),
    ("#!ifdef A\n#!ifndef B\n#!endif\n", 1, "without a matching #!endif"),
    ("debug=1\n#!endif\n", 2, "#!endif without #!ifdef"),
    ("debug=1\n#!else\n", 2, "#!else without #!ifdef"),
    ("#!ifdef A\n#!else\n#!else\n#!endif\n", 3, "second #!else"),
    ("#!ifdef\n#!endif\n", 1, "#!ifdef needs a name"),
    ("#!define 1X 2\n", 1, "needs a name"),
    ('#!subst "/a/b"\n', 1, "expected /regex/replacement/flags"),
    ('#!subst "/(a/b/"\n', 1, "bad regex"),
    ('#!subst "/a/b/x"\n', 1, "unknown flag"),
    ('#!subst "/a/\\2/"\n', 1, "refers to group 2"),
    ("#!subst /a/b/\n", 1, "quoted expression"),
    ('#!substdef "/a b/c/"\n', 1, "cannot be a define name"),
    ("debug=1\ninclude_file nofile\n", 2, "include_file expects a quoted file name"),
    ('debug=1\ninclude_file "/nonexistent/x.cfg"\n', 2, "file not found"),
    ("#!include_file nope\n", 1, "expects a quoted file name"),
    ("debug=1\ncolour=3\n", 2, "unknown core parameter 'colour'"),
    ('debug=1\nchildren="8"\n', 2, "expects a number"),
    ("debug=1\nlisten=udp:1.2.3.4:70000\n", 2, "out of range"),
    ("debug=1\nfoo bar\n", 2, "unknown statement 'foo'"),
    ("debug=1\n42\n", 2, "unexpected '42'"),
    ("debug=1\nrequest_route {\n", 2, "unterminated request_route block"),
    ("#!define A\n#!define A\n", 2, "already defined"),
]


@pytest.mark.parametrize("text, line, reason", CASES)
def test_error_has_file_and_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        parse_config_text(text, source="err.cfg")
    err = ei.value
    assert (err.file, err.line) == ("err.cfg", line)
    assert reason in err.reason
    assert str(err).startswith(f"err.cfg:{line}")


@pytest.mark.parametrize("text, line, reason", CASES[:12])
def test_errors_in_included_file_name_that_file(tmp_path: Path, text: str, line: int,
                                                reason: str) -> None:
    inc = tmp_path / "inc.cfg"
    inc.write_text(text)
    main = tmp_path / "kamailio.cfg"
    main.write_text('debug=2\n\ninclude_file "inc.cfg"\nchildren=1\n')
    with pytest.raises(ConfigError) as ei:
        parse_config(main)
    assert (ei.value.file, ei.value.line) == (str(inc), line)
    assert reason in ei.value.reason


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "none.cfg"
    with pytest.raises(ConfigError) as ei:
        parse_config(path)
    assert ei.value.file == str(path)
    assert "cannot read" in ei.value.reason


def test_unterminated_route_in_included_file(tmp_path: Path) -> None:
    (tmp_path / "routes.cfg").write_text("\n\nroute[X] {\n  exit;\n")
    main = tmp_path / "k.cfg"
    main.write_text('include_file "routes.cfg"\nrequest_route { exit; }\n')
    with pytest.raises(ConfigError) as ei:
        parse_config(main)
    # Blocks may span include boundaries (as in Kamailio), but the main file's braces balance
    # each other, so the block opened in routes.cfg is never closed: the error points there.
    assert ei.value.file == str(tmp_path / "routes.cfg")
    assert ei.value.line == 3
