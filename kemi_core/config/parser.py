"""kamailio.cfg statements: core parameters, loadmodule, modparam, cfgengine, route blocks.

Route blocks are not parsed here: their preprocessed text goes to the native engine, with the
place each line came from.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from kemi_core.config.core_params import (
    FALSE_WORDS,
    IMPLEMENTED,
    KNOWN,
    LOG_FACILITIES,
    NOT_IMPLEMENTED,
    ROUTE_KEYWORDS,
    TRUE_WORDS,
    Kind,
)
from kemi_core.config.lexer import Lexer, Token, describe
from kemi_core.config.model import (
    CoreConfig,
    ListenAddr,
    LoadModule,
    Located,
    ModParam,
    RouteBlock,
)
from kemi_core.config.preproc import Source, preprocess_file, preprocess_text
from kemi_core.config.routes import read_route_block
from kemi_core.config.textscan import module_name
from kemi_core.config.values import (
    SERVED_PROTOS,
    AddressError,
    ListenSpec,
    parse_aliases,
    parse_listen,
)
from kemi_core.errors import ConfigError

log = logging.getLogger("kemi.config")

_DESC_WORDS = ("desc", "descr", "description")


def parse_config(path: str | Path, defines: dict[str, str] | None = None) -> CoreConfig:
    """Parse a kamailio.cfg file (and what it includes)."""
    return _Parser(preprocess_file(path, defines), str(path)).parse()


def parse_config_text(text: str, source: str = "<string>", defines: dict[str, str] | None = None,
                      base_dir: str | Path | None = None) -> CoreConfig:
    """Parse config text; relative includes resolve against ``base_dir`` (default: cwd)."""
    return _Parser(preprocess_text(text, source, defines, base_dir), source).parse()


class _Parser:
    def __init__(self, src: Source, source: str) -> None:
        self.lx = Lexer(src)
        self.cfg = CoreConfig(source=source)
        self.cfg.defines = dict(src.defines)
        self._listens: list[tuple[ListenSpec, str, int]] = []
        self._routes: dict[tuple[str, str | None], RouteBlock] = {}

    # ---- helpers --------------------------------------------------------------------------
    def _err(self, reason: str, pos: int) -> ConfigError:
        return self.lx.error(reason, pos)

    def _loc(self, tok: Token) -> tuple[str, int]:
        file, line, _ = self.lx.where(tok.pos)
        return file, line

    def _expect(self, kind: str, text: str | None, what: str) -> Token:
        t = self.lx.next()
        if t.kind != kind or (text is not None and t.text != text):
            raise self._err(f"expected {what}, found {describe(t)}", t.pos)
        return t

    def _is_op(self, t: Token, op: str) -> bool:
        return t.kind == "op" and t.text == op

    # ---- statements -----------------------------------------------------------------------
    def parse(self) -> CoreConfig:
        while True:
            t = self.lx.next()
            if t.kind == "eof":
                break
            if self._is_op(t, ";"):
                continue
            if t.kind != "id":
                raise self._err(f"unexpected {describe(t)}", t.pos)
            self._statement(t)
        self._finish()
        return self.cfg

    def _statement(self, t: Token) -> None:
        word = str(t.value)
        nxt = self.lx.peek()
        if word in ROUTE_KEYWORDS and (self._is_op(nxt, "{") or self._is_op(nxt, "[")):
            self._route(t)
        elif word in ("loadmodule", "loadmodulex"):
            self._loadmodule(t)
        elif word in ("modparam", "modparamx"):
            self._modparam(t)
        elif self._is_op(nxt, "="):
            self._assign(t)
        elif word in ("cfgengine", "loadpath", "mpath") and nxt.kind == "str":
            self.lx.next()
            if word == "cfgengine":
                self._set_engine(str(nxt.value), t)
            else:
                self.cfg.mpath = str(nxt.value)
        elif word in ("flags", "avpflags"):
            self._flags(t)
        elif word in KNOWN or "." in word:
            raise self._err(f"expected '=' after '{word}'", nxt.pos)
        else:
            raise self._err(f"unknown statement '{word}' (not a core parameter, loadmodule, "
                            "modparam or route block)", t.pos)

    def _value_tokens(self, after: Token) -> list[Token]:
        """The value of ``name = value``: tokens up to ``;``, the end of the line, or the next
        ``name =`` on the same line."""
        toks: list[Token] = []
        prev_end = after.end
        while True:
            t = self.lx.peek()
            if t.kind == "eof" or not self.lx.same_line(prev_end, t.pos):
                break
            if self._is_op(t, ";"):
                self.lx.next()
                break
            if toks and t.kind == "id":
                saved = self.lx.pos
                self.lx.next()
                follows_eq = self._is_op(self.lx.peek(), "=")
                self.lx.pos = saved
                if follows_eq:
                    break
            toks.append(self.lx.next())
            prev_end = t.end
        return toks

    def _raw(self, toks: list[Token]) -> str:
        return self.lx.text[toks[0].pos:toks[-1].end]

    def _scalar(self, toks: list[Token]) -> tuple[str, Any]:
        """("int"|"str"|"bool"|"id"|"raw", value) of a value's tokens."""
        if all(t.kind == "str" for t in toks):
            return "str", "".join(str(t.value) for t in toks)  # "a" "b" is one string
        if len(toks) == 2 and toks[0].kind == "op" and toks[0].text in "-+" \
                and toks[1].kind == "int":
            n = int(toks[1].value)
            return "int", -n if toks[0].text == "-" else n
        if len(toks) == 1:
            t = toks[0]
            if t.kind == "int":
                return "int", t.value
            if t.kind == "id":
                low = str(t.value).lower()
                if low in TRUE_WORDS or low in FALSE_WORDS:
                    return "bool", low in TRUE_WORDS
                return "id", t.value
        return "raw", self._raw(toks)

    # ---- name = value ---------------------------------------------------------------------
    def _assign(self, name_tok: Token) -> None:
        eq = self.lx.next()
        name = str(name_tok.value)
        toks = self._value_tokens(eq)
        if not toks:
            raise self._err(f"missing value for '{name}'", eq.end)
        if name in IMPLEMENTED:
            self._implemented(name, name_tok, toks)
        elif name in NOT_IMPLEMENTED:
            kind, value = self._scalar(toks)
            if name not in self.cfg.ignored:
                file, line = self._loc(name_tok)
                log.warning("%s:%d: core parameter '%s' is not implemented by kemi: ignored",
                            file, line, name)
            self.cfg.ignored[name] = value
        elif "." in name and not name.startswith("kemi."):
            self._cfg_var(name, toks)
        else:
            hint = difflib.get_close_matches(name, sorted(KNOWN), n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise self._err(f"unknown core parameter '{name}'{extra}", name_tok.pos)

    def _implemented(self, name: str, name_tok: Token, toks: list[Token]) -> None:
        kind, attr = IMPLEMENTED[name]
        if kind is Kind.LISTEN or kind is Kind.ALIAS:
            try:
                if kind is Kind.LISTEN:
                    self._listens.append((parse_listen(self._raw(toks)), *self._loc(toks[0])))
                else:
                    self.cfg.aliases.extend(parse_aliases(self._raw(toks)))
            except AddressError as exc:
                raise self._err(str(exc), toks[0].pos) from None
            return
        vkind, value = self._scalar(toks)
        at = toks[0].pos
        if kind is Kind.INT:
            if vkind == "bool":
                value = int(value)
            elif vkind != "int":
                raise self._err(f"'{name}' expects a number, found {self._raw(toks)}", at)
            if name == "port" and not 1 <= value <= 65535:
                raise self._err(f"port {value} out of range (1-65535)", at)
            if name != "debug" and value < 0:
                raise self._err(f"'{name}' cannot be negative", at)
        elif kind is Kind.BOOL:
            if vkind == "int":
                value = value != 0
            elif vkind != "bool":
                raise self._err(f"'{name}' expects yes/no (or a number), found {self._raw(toks)}",
                                at)
        elif kind is Kind.STR_OR_ID:
            if vkind not in ("str", "id"):
                raise self._err(f"'{name}' expects a name, found {self._raw(toks)}", at)
            if name == "log_facility" and str(value).upper() not in LOG_FACILITIES:
                raise self._err(f"unknown log facility '{value}' (LOG_DAEMON, LOG_LOCAL0..7, ...)",
                                at)
            if name == "log_engine_type":
                value = str(value).lower()
                if value not in ("json", ""):
                    raise self._err(f"unknown log engine '{value}' (kemi has the json engine)", at)
            else:
                value = str(value).upper()
        else:  # STR, ENGINE, CALLBACK
            if vkind != "str":
                raise self._err(f"'{name}' expects a quoted string, found {self._raw(toks)}", at)
            if kind is Kind.ENGINE:
                self._set_engine(value, name_tok)
                return
            if kind is Kind.CALLBACK:
                self.cfg.kemi_callbacks[name[len("kemi."):]] = "" if value == "none" else value
                return
        if attr is None:
            self.cfg.extra[name] = value
        else:
            setattr(self.cfg, attr, value)

    def _set_engine(self, name: str, where: Token) -> None:
        self.cfg.cfgengine = name
        self.cfg.cfgengine_line = Located(*self._loc(where))

    def _cfg_var(self, name: str, toks: list[Token]) -> None:
        """Custom cfg var: ``group.name = value [desc "text"]``."""
        start = toks[0].pos
        if len(toks) >= 2 and toks[-2].kind == "id" and toks[-2].value in _DESC_WORDS:
            if toks[-1].kind != "str":
                raise self._err("desc expects a quoted description", toks[-1].pos)
            self.cfg.cfg_var_descriptions[name] = str(toks[-1].value)
            toks = toks[:-2]
        if not toks:
            raise self._err(f"missing value for '{name}'", start)
        vkind, value = self._scalar(toks)
        if vkind == "bool":
            value = int(value)
        elif vkind not in ("int", "str"):
            raise self._err(f"custom parameter '{name}' needs a number or a quoted string, "
                            f"found {self._raw(toks)}", toks[0].pos)
        self.cfg.extra[name] = value

    def _flags(self, kw: Token) -> None:
        """``flags name[:bit], ...`` -> extra["flags"] = {name: bit or None}."""
        toks = self._value_tokens(kw)
        flags: dict[str, int | None] = self.cfg.extra.setdefault(str(kw.value), {})
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind != "id":
                raise self._err(f"{kw.value}: expected a flag name, found {describe(t)}", t.pos)
            bit = None
            if i + 1 < len(toks) and self._is_op(toks[i + 1], ":"):
                if i + 2 >= len(toks) or toks[i + 2].kind != "int":
                    raise self._err(f"{kw.value}: expected a bit number after ':'", toks[i + 1].pos)
                bit = int(toks[i + 2].value)
                i += 2
            flags[str(t.value)] = bit
            i += 1
            if i < len(toks):
                if not self._is_op(toks[i], ","):
                    raise self._err(f"{kw.value}: expected ',', found {describe(toks[i])}",
                                    toks[i].pos)
                i += 1

    # ---- modules --------------------------------------------------------------------------
    def _loadmodule(self, kw: Token) -> None:
        t = self.lx.next()
        paren = self._is_op(t, "(")
        if paren:
            t = self.lx.next()
        if t.kind != "str" or not module_name(str(t.value)):
            raise self._err(f'{kw.value} expects a quoted module name: loadmodule "tm.so"', t.pos)
        if paren:
            self._expect("op", ")", "')'")
        file, line = self._loc(kw)
        self.cfg.loadmodules.append(LoadModule(file, line, module_name(str(t.value)),
                                               str(t.value)))

    def _modparam(self, kw: Token) -> None:
        self._expect("op", "(", f"'(' after {kw.value}")
        mod = self._expect("str", None, "the module name as a quoted string")
        self._expect("op", ",", "','")
        name = self._expect("str", None, "the parameter name as a quoted string")
        self._expect("op", ",", "','")
        toks: list[Token] = []
        while True:
            t = self.lx.next()
            if t.kind == "eof":
                raise self._err(f"{kw.value}: missing ')'", kw.pos)
            if self._is_op(t, ")"):
                break
            toks.append(t)
        if not toks:
            raise self._err(f"{kw.value}: missing value", t.pos)
        vkind, value = self._scalar(toks)
        if vkind == "bool":
            value = int(value)
        elif vkind not in ("int", "str"):
            what = f"'{value}' (an undefined name?)" if vkind == "id" else self._raw(toks)
            raise self._err(f"{kw.value} value must be a quoted string or a number, found {what}",
                            toks[0].pos)
        file, line = self._loc(kw)
        self.cfg.modparams.append(ModParam(file, line, str(mod.value), str(name.value), value))

    # ---- route blocks ---------------------------------------------------------------------
    def _route(self, kw: Token) -> None:
        block = read_route_block(self.lx, kw)
        key = (block.kind, block.name)
        if key in self._routes:
            prev = self._routes[key]
            label = block.kind if block.name is None else f"{block.kind}[{block.name}]"
            raise self._err(f"duplicate route block {label} (first at {prev.file}:{prev.line})",
                            kw.pos)
        self._routes[key] = block
        self.cfg.routes.append(block)

    # ---- end ------------------------------------------------------------------------------
    def _finish(self) -> None:
        cfg = self.cfg
        tls_on = cfg.enable_tls and not (cfg.extra.get("disable_tls") or cfg.extra.get("tls_disable"))
        for spec, file, line in self._listens:
            for addr in spec.addrs(cfg.port):
                if addr.proto in SERVED_PROTOS or (addr.proto == "tls" and tls_on):
                    cfg.listen.append(addr)
                    continue
                if addr.proto == "tls":
                    log.warning("%s:%d: listen on tls:%s:%d needs enable_tls=yes: skipped", file,
                                line, addr.host, addr.port)
                else:
                    log.warning("%s:%d: listen on %s is not supported by kemi (udp, tcp and tls "
                                "only): skipped", file, line, addr.proto)
                cfg.ignored.setdefault("listen", []).append(
                    f"{addr.proto}:{addr.host}:{addr.port}")
            if tls_on and spec.protos == SERVED_PROTOS:  # no protocol given: TLS on port + 1
                port = (spec.port if spec.port is not None else cfg.port) + 1
                adv = spec.advertise
                cfg.listen.append(ListenAddr("tls", spec.host, port, adv.host if adv else None,
                                             adv.port + 1 if adv and adv.port else None,
                                             spec.name, spec.virtual))

