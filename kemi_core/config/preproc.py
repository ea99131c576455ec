"""kamailio.cfg preprocessor: directives, defines, #!subst, includes and comments.

The output is the config as the parser should see it: comments and directive lines blanked,
inactive ``#!ifdef`` regions removed, defined names replaced (outside strings and
pseudo-variables, as Kamailio does), ``#!subst`` rules applied inside string literals and
included files spliced in. Every output line remembers the file and line it came from, so a
statement parsed from it (or a route block compiled later) reports the place it was written.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import attrs

from kemi_core.config.subst import SubstRule, SubstSyntaxError, parse_subst
from kemi_core.config.textscan import SCAN, module_name, pv_end, string_end
from kemi_core.errors import ConfigError

log = logging.getLogger("kemi.config")

MAX_INCLUDE_DEPTH = 10
MAX_EXPANSION_DEPTH = 32
#: Defined before the config is read: Kamailio defines its version (KAMAILIO_X[_Y]).
PREDEFINED = {"KAMAILIO_5": "", "KAMAILIO_5_6": ""}

_HEADERS = frozenset({"KAMAILIO", "KEMI", "SER", "MAXCOMPAT", "OPENSER", "ALL"})
_DIRECTIVES = frozenset({
    "define", "def", "trydef", "redefine", "undef", "ifdef", "ifndef", "else", "endif",
    "subst", "substdef", "substdefs", "defenv", "defenvs", "trydefenv", "trydefenvs",
    "include_file", "import_file",
}) | _HEADERS
_CONDITIONALS = frozenset({"ifdef", "ifndef", "else", "endif"})
_DEFINING = frozenset({"define", "def", "trydef", "redefine"})

_LINE_START = re.compile(r"[ \t]*(#!|!!)([A-Za-z_][A-Za-z0-9_]*)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUOTED_AFTER = re.compile(r"[ \t]*([\"'])([^\"'\n]*)\1")  # include_file "x"
_MODULE_AFTER = re.compile(r"[ \t]*\(?[ \t]*([\"'])(.*?)\1")  # loadmodule "x.so"


@attrs.define
class Source:
    """Preprocessed config text; ``origins[i]`` is the (file, line) of ``lines[i]``."""

    lines: list[str]
    origins: list[tuple[str, int]]
    defines: dict[str, str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@attrs.define
class _Cond:
    line: int
    parent_active: bool
    taking: bool
    has_else: bool = False

    @property
    def active(self) -> bool:
        return self.parent_active and self.taking


@attrs.define
class _File:
    """Scanning state of one file."""

    text: str
    name: str
    directory: Path
    pos: int = 0
    line: int = 1
    buf: list[str] = attrs.Factory(list)
    conds: list[_Cond] = attrs.Factory(list)

    @property
    def active(self) -> bool:
        return not self.conds or self.conds[-1].active

    def error(self, reason: str, line: int | None = None) -> ConfigError:
        return ConfigError(reason, self.name, self.line if line is None else line)


class Preprocessor:
    """Runs once per config; state (defines, subst rules) is shared with included files."""

    def __init__(self, defines: dict[str, str] | None = None) -> None:
        self.defines: dict[str, str] = dict(PREDEFINED)
        self.defines.update(defines or {})
        self.substs: list[SubstRule] = []
        self.lines: list[str] = []
        self.origins: list[tuple[str, int]] = []
        self._depth = 0

    # ---- entry points -------------------------------------------------------------------
    def run_file(self, path: str | Path) -> Source:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc.strerror or exc}", str(path)) from None
        return self.run_text(text, str(path), p.parent)

    def run_text(self, text: str, name: str, directory: Path) -> Source:
        self._scan(_File(text.removeprefix("\ufeff"), name, directory))
        return Source(self.lines, self.origins, self.defines)

    # ---- output ---------------------------------------------------------------------------
    def _newline(self, f: _File) -> None:
        self.lines.append("".join(f.buf))
        self.origins.append((f.name, f.line))
        f.buf = []
        f.line += 1

    def _emit(self, f: _File, s: str) -> None:
        """Emit text that may contain newlines (a multi-line string or comment)."""
        first, *rest = s.split("\n")
        f.buf.append(first)
        for piece in rest:
            self._newline(f)
            f.buf.append(piece)

    # ---- the scanner ----------------------------------------------------------------------
    def _scan(self, f: _File) -> None:
        text, n = f.text, len(f.text)
        at_line_start = True
        while f.pos < n:
            if at_line_start:
                at_line_start = False
                if self._line_start(f):
                    at_line_start = True
                    continue
            m = SCAN.match(text, f.pos)
            assert m is not None  # the alternatives cover every character
            kind, tok = m.lastgroup, m.group()
            if kind == "nl":
                self._newline(f)
                f.pos += 1
                at_line_start = True
            elif kind == "quote":
                end = string_end(text, f.pos)
                if end < 0:
                    raise f.error("unterminated string (missing closing quote)")
                self._emit(f, self._subst(text[f.pos:end]))
                f.pos = end
            elif kind == "lc":
                nl = text.find("\n", f.pos)
                f.pos = n if nl < 0 else nl
            elif kind == "bc":
                end = text.find("*/", f.pos + 2)
                if end < 0:
                    raise f.error("unterminated comment (missing */)")
                self._emit(f, re.sub(r"[^\n]", " ", text[f.pos:end + 2]))
                f.pos = end + 2
            elif kind == "pv":
                end = pv_end(text, f.pos)
                f.buf.append(text[f.pos:end])
                f.pos = end
            elif kind == "word":
                f.pos = m.end()
                self._word(f, tok)
            else:
                f.buf.append(tok)
                f.pos = m.end()
        if f.buf:
            self._newline(f)
        if f.conds:
            c = f.conds[-1]
            raise f.error("#!ifdef/#!ifndef without a matching #!endif", c.line)

    def _line_start(self, f: _File) -> bool:
        """Handle a directive, or a line inside an inactive region; True when consumed."""
        m = _LINE_START.match(f.text, f.pos)
        if m is not None:
            word = m.group(2) or ""
            if m.group(1) == "#!" or word in _DIRECTIVES:
                self._directive(f, m.group(1), word, m.end())
                return True
        if not f.active:
            nl = f.text.find("\n", f.pos)
            f.pos = len(f.text) if nl < 0 else nl + 1
            self._newline(f)
            return True
        return False

    def _word(self, f: _File, word: str) -> None:
        if word in ("include_file", "import_file"):
            self._include(f, word == "import_file", self._path_after(f, word))
            return
        if word in self.defines and not word[0].isdigit():
            f.buf.append(self._expand(word, f, ()))
            return
        f.buf.append(word)
        if word in ("loadmodule", "loadmodulex"):
            # Kamailio defines MOD_<name> once a module is loaded (#!ifdef MOD_tm).
            m = _MODULE_AFTER.match(f.text, f.pos)
            if m:
                self.defines.setdefault("MOD_" + module_name(m.group(2)), "")

    def _path_after(self, f: _File, what: str) -> str:
        m = _QUOTED_AFTER.match(f.text, f.pos)
        if m is None:
            raise f.error(f"{what} expects a quoted file name")
        f.pos = m.end()
        return m.group(2)

    def _subst(self, literal: str) -> str:
        """Apply the #!subst rules to the inside of a string literal (quotes kept)."""
        if not self.substs:
            return literal
        inner = literal[1:-1]
        for rule in self.substs:
            inner = rule.apply(inner)
        return literal[0] + inner + literal[-1]

    def _expand(self, name: str, f: _File, active: tuple[str, ...]) -> str:
        """A define's value, itself preprocessed (nested defines, strings, comments)."""
        if name in active:
            return name  # self-reference: leave it, as the C preprocessor does
        if len(active) >= MAX_EXPANSION_DEPTH:
            raise f.error(f"defines nested too deeply while expanding {name!r}")
        value = self.defines[name]
        out: list[str] = []
        pos, n = 0, len(value)
        while pos < n:
            m = SCAN.match(value, pos)
            assert m is not None
            kind, tok = m.lastgroup, m.group()
            if kind == "quote":
                end = string_end(value, pos)
                if end < 0:
                    raise f.error(f"unterminated string in the value of {name!r}")
                out.append(self._subst(value[pos:end]))
                pos = end
                continue
            if kind == "lc":
                break
            if kind == "pv":
                end = pv_end(value, pos)
                out.append(value[pos:end])
                pos = end
                continue
            if kind == "word" and tok in self.defines and not tok[0].isdigit():
                out.append(self._expand(tok, f, (*active, name)))
            else:
                out.append(tok)
            pos = m.end()
        return "".join(out).strip()

    # ---- includes -----------------------------------------------------------------------
    def _include(self, f: _File, optional: bool, raw: str) -> None:
        what = "import_file" if optional else "include_file"
        for rule in self.substs:  # Kamailio applies #!subst to the file name too
            raw = rule.apply(raw)
        target = self._resolve(raw, f.directory)
        if target is None:
            if optional:
                log.debug("%s:%d: import_file %r not found, skipped", f.name, f.line, raw)
                return
            raise f.error(f"include_file: file not found: {raw!r}")
        if self._depth >= MAX_INCLUDE_DEPTH:
            raise f.error(f"{what} {raw!r}: includes nested more than {MAX_INCLUDE_DEPTH} deep")
        try:
            text = target.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise f.error(f"{what} {raw!r}: {exc.strerror or exc}") from None
        # The rest of this line continues after the included text, at its source column.
        col = f.pos - (f.text.rfind("\n", 0, f.pos) + 1)
        self.lines.append("".join(f.buf))
        self.origins.append((f.name, f.line))
        self._depth += 1
        try:
            self._scan(_File(text.removeprefix("\ufeff"), str(target), target.parent))
        finally:
            self._depth -= 1
        f.buf = [" " * col]

    @staticmethod
    def _resolve(raw: str, directory: Path) -> Path | None:
        p = Path(os.path.expanduser(raw))
        candidates = [p] if p.is_absolute() else [directory / p, Path.cwd() / p]
        for c in candidates:
            if c.is_file():
                return c
        return None

    # ---- directives ---------------------------------------------------------------------
    def _directive(self, f: _File, prefix: str, word: str, after: int) -> None:
        text = f.text
        start_line = f.line
        nl = text.find("\n", after)
        end = len(text) if nl < 0 else nl
        args = text[after:end]
        consumed = 1
        # A define's value goes on over lines ending in a backslash (joined with a space).
        while word in _DEFINING and args.rstrip().endswith("\\") and end < len(text):
            nl = text.find("\n", end + 1)
            nxt = len(text) if nl < 0 else nl
            args = args.rstrip()[:-1] + " " + text[end + 1:nxt]
            end = nxt
            consumed += 1
        f.pos = end + 1 if end < len(text) else end
        try:
            if word in _CONDITIONALS:
                self._conditional(f, word, args)
            elif f.active:
                self._act(f, prefix, word, args)
        finally:
            # Keep the line count: one (blank) output line per source line consumed.
            f.line = start_line
            for _ in range(consumed):
                self._newline(f)

    def _conditional(self, f: _File, word: str, args: str) -> None:
        if word in ("ifdef", "ifndef"):
            name = self._name_arg(f, word, args)
            defined = name in self.defines
            f.conds.append(_Cond(f.line, f.active, defined if word == "ifdef" else not defined))
            return
        if not f.conds:
            raise f.error(f"#!{word} without #!ifdef/#!ifndef")
        if word == "else":
            top = f.conds[-1]
            if top.has_else:
                raise f.error(f"second #!else for the #!ifdef at line {top.line}")
            top.has_else = True
            top.taking = not top.taking
        else:
            f.conds.pop()

    def _name_arg(self, f: _File, word: str, args: str) -> str:
        parts = args.split(None, 1)
        if not parts or not _IDENT.fullmatch(parts[0]):
            raise f.error(f"#!{word} needs a name (letters, digits and _)")
        return parts[0]

    def _act(self, f: _File, prefix: str, word: str, args: str) -> None:
        if word in _HEADERS:
            return
        if word not in _DIRECTIVES:
            if word:
                log.warning("%s:%d: unknown preprocessor directive '%s%s' ignored",
                            f.name, f.line, prefix, word)
            return
        if word in _DEFINING:
            name = self._name_arg(f, word, args)
            value = args.split(None, 1)[1].strip() if len(args.split(None, 1)) > 1 else ""
            if word == "trydef" and name in self.defines:
                return
            if word in ("define", "def") and name in self.defines:
                raise f.error(f"{name!r} is already defined (use #!redefine or #!trydef)")
            self.defines[name] = value
        elif word == "undef":
            self.defines.pop(self._name_arg(f, word, args), None)
        elif word in ("subst", "substdef", "substdefs"):
            self._subst_directive(f, word, args)
        elif word in ("defenv", "defenvs", "trydefenv", "trydefenvs"):
            self._defenv(f, word, args)
        else:  # include_file / import_file
            m = re.match(r"\s*([\"'])([^\"'\n]*)\1\s*$", args)
            if m is None:
                raise f.error(f"#!{word} expects a quoted file name")
            self._include(f, word == "import_file", m.group(2))
            f.buf = []

    def _subst_directive(self, f: _File, word: str, args: str) -> None:
        m = re.match(r"\s*([\"'])(.*)\1\s*$", args)
        if m is None:
            raise f.error(f'#!{word} expects a quoted expression: #!{word} "/regex/replacement/"')
        try:
            rule = parse_subst(m.group(2))
        except SubstSyntaxError as exc:
            raise f.error(f"#!{word}: {exc}") from None
        self.substs.append(rule)
        if word != "subst":
            if not _IDENT.fullmatch(rule.name):
                raise f.error(f"#!{word}: {rule.name!r} cannot be a define name")
            value = rule.replacement
            self.defines[rule.name] = f'"{value}"' if word == "substdefs" else value

    def _defenv(self, f: _File, word: str, args: str) -> None:
        spec = args.strip().split(None, 1)[0] if args.strip() else ""
        name, _, env = spec.partition("=")
        env = env or name
        if not _IDENT.fullmatch(name) or not env:
            raise f.error(f"#!{word} needs NAME or ID=NAME")
        value = os.environ.get(env)
        if value is None:
            if word.startswith("try"):
                return
            raise f.error(f"#!{word}: environment variable {env!r} is not set")
        self.defines[name] = f'"{value}"' if word.endswith("s") else value


def preprocess_file(path: str | Path, defines: dict[str, str] | None = None) -> Source:
    return Preprocessor(defines).run_file(path)


def preprocess_text(text: str, source: str = "<string>", defines: dict[str, str] | None = None,
                    base_dir: str | Path | None = None) -> Source:
    directory = Path(base_dir) if base_dir is not None else Path.cwd()
    return Preprocessor(defines).run_text(text, source, directory)
