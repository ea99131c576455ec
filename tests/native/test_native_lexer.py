"""Lexer: tokens, positions in the config file, strings, PVs, IPs, comments, errors."""

from __future__ import annotations

import pytest

from kemi_core.errors import ConfigError
from kemi_core.native.lexer import Tok, tokenize


def kinds(text: str) -> list[tuple[Tok, object]]:
    return [(t.kind, t.value) for t in tokenize(text, "f.cfg")][:-1]


def test_positions_follow_the_file() -> None:
    toks = tokenize("a;\n  b(1);", "f.cfg", line=10, column=5)
    assert [(t.text, t.line, t.column) for t in toks[:-1]] == [
        ("a", 10, 5), (";", 10, 6), ("b", 11, 3), ("(", 11, 4), ("1", 11, 5), (")", 11, 6),
        (";", 11, 7)]


def test_strings_and_escapes() -> None:
    assert kinds(r'"a\"b\n\t\\" ' + r"'x\'y'") == [(Tok.STRING, 'a"b\n\t\\'), (Tok.STRING, "x'y")]
    # Unknown escapes keep their backslash (regexes need them).
    assert kinds(r'"^(\+|00)[1-9]"') == [(Tok.STRING, r"^(\+|00)[1-9]")]
    # $ inside strings is not interpolated by the language.
    assert kinds('"a $ru b"') == [(Tok.STRING, "a $ru b")]


def test_pseudo_variables() -> None:
    text = "$ru $var(x) $(ru{uri.user}) $sht(ipban=>$si) $T_branch_idx $hdr(Event) $null"
    assert [v for _, v in kinds(text)] == [
        "$ru", "$var(x)", "$(ru{uri.user})", "$sht(ipban=>$si)", "$T_branch_idx",
        "$hdr(Event)", "$null"]
    assert {k for k, _ in kinds(text)} == {Tok.PV}


def test_numbers_ips_and_operators() -> None:
    assert kinds("10 0x1F 1.2.3.4 10.0.0.0/8 [::1] ::1 2001:db8::1") == [
        (Tok.INT, 10), (Tok.INT, 31), (Tok.IP, "1.2.3.4"), (Tok.IP, "10.0.0.0/8"),
        (Tok.IP, "[::1]"), (Tok.IP, "::1"), (Tok.IP, "2001:db8::1")]
    assert [v for _, v in kinds("== != =~ !~ <= >= && || := << >> = < > ! + - * / % | & ^ ~")] == [
        "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", ":=", "<<", ">>", "=", "<", ">", "!",
        "+", "-", "*", "/", "%", "|", "&", "^", "~"]
    # `case 1:` stays a number and a colon.
    assert kinds("case 1:") == [(Tok.IDENT, "case"), (Tok.INT, 1), (Tok.OP, ":")]
    assert kinds("msg:len") == [(Tok.IDENT, "msg:len")]


def test_comments_are_skipped() -> None:
    text = "a # line\n// other\n/* block\n still */ b #!ifdef X\n"
    toks = tokenize(text, "f.cfg")
    assert [(t.text, t.line) for t in toks[:-1]] == [("a", 1), ("b", 4)]


@pytest.mark.parametrize(("text", "where", "reason"), [
    ('x = "abc', (1, 5), "unterminated string"),
    ("a /* never closed", (1, 3), "unterminated /* comment"),
    ("a @ b", (1, 3), "unexpected character '@'"),
    ("$var(x", (1, 1), "unbalanced parenthesis"),
    ("$ x", (1, 1), "pseudo-variable name"),
    ("12abc", (1, 1), "malformed number"),
])
def test_lexer_errors_have_file_line_column(text: str, where: tuple[int, int], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        tokenize(text, "f.cfg")
    err = info.value
    assert (err.file, err.line, err.column) == ("f.cfg", *where)
    assert reason in err.reason
