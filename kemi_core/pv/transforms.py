"""Transformations: ``$(ru{uri.user})``, ``$(var(x){s.len})``, chained left to right.

Each one is compiled when its spec is parsed (name checked, parameters converted), so applying
it per message is a plain call. Only literal parameters are supported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from kemi_core.pv.registry import PvError, PvValue

Transform = Callable[[PvValue], PvValue]


def _s(v: PvValue) -> str:
    return "" if v is None else str(v)


def _int_param(params: list[str], i: int, tr: str, default: int | None = None) -> int:
    if i >= len(params):
        if default is None:
            raise PvError(f"transformation {tr} needs parameter {i + 1}")
        return default
    try:
        return int(params[i].strip())
    except ValueError:
        raise PvError(f"transformation {tr}: parameter {i + 1} must be an integer, "
                      f"not {params[i]!r}")


def _to_int(v: PvValue) -> PvValue:
    if v is None or isinstance(v, int):
        return v
    text = v.strip()
    digits = 0
    if text[:1] in "+-":
        digits = 1
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    try:
        return int(text[:digits])
    except ValueError:
        return 0


def _substr(off: int, length: int) -> Transform:
    def tr(v: PvValue) -> PvValue:
        if v is None:
            return None
        s = str(v)
        start = off if off >= 0 else max(len(s) + off, 0)
        if length == 0:
            return s[start:]
        if length > 0:
            return s[start:start + length]
        return s[start:len(s) + length]
    return tr


def _select(idx: int, sep: str) -> Transform:
    def tr(v: PvValue) -> PvValue:
        if v is None:
            return None
        parts = str(v).split(sep)
        try:
            return parts[idx]
        except IndexError:
            return None
    return tr


def _uri_part(part: str, param: str | None = None) -> Transform:
    def tr(v: PvValue) -> PvValue:
        from kemi_core.sip.uri import parse_uri

        if v is None:
            return None
        try:
            u = parse_uri(str(v).strip())
        except Exception:
            return None
        if part == "param":
            val = u.params.get(param or "")
            return val if val is not None else ("" if (param or "") in u.params else None)
        if part == "params":
            text = str(u)
            head = text.split("?", 1)[0]
            return head.split(";", 1)[1] if ";" in head else ""
        value = {"user": u.user, "host": u.host, "port": u.port, "passwd": u.password,
                 "scheme": u.scheme, "transport": u.transport}[part]
        return value if value is not None else ""
    return tr


def _nameaddr(part: str) -> Transform:
    def tr(v: PvValue) -> PvValue:
        if v is None:
            return None
        s = str(v).strip()
        lt = s.find("<")
        if lt < 0:
            return s if part == "uri" else ""
        gt = s.find(">", lt)
        if part == "uri":
            return s[lt + 1:gt if gt > 0 else None]
        return s[:lt].strip().strip('"')
    return tr


def _param_value(name: str, sep: str) -> Transform:
    def tr(v: PvValue) -> PvValue:
        if v is None:
            return None
        for item in str(v).split(sep):
            key, _, val = item.partition("=")
            if key.strip().lower() == name.lower():
                return val.strip()
        return None
    return tr


def compile_transform(text: str) -> Transform:
    """``s.substr,1,2`` (the text between braces) -> a callable."""
    name, *params = text.split(",")
    name = name.strip()
    simple: dict[str, Transform] = {
        "s.len": lambda v: len(_s(v)),
        "s.int": _to_int,
        "s.tolower": lambda v: None if v is None else str(v).lower(),
        "s.toupper": lambda v: None if v is None else str(v).upper(),
        "s.trim": lambda v: None if v is None else str(v).strip(" \t\r\n"),
        "s.rtrim": lambda v: None if v is None else str(v).rstrip(" \t\r\n"),
        "s.ltrim": lambda v: None if v is None else str(v).lstrip(" \t\r\n"),
        "s.md5": lambda v: hashlib.md5(_s(v).encode("utf-8", "surrogateescape")).hexdigest(),
        "s.numeric": lambda v: None if v is None else "".join(c for c in str(v) if c.isdigit()),
        "uri.user": _uri_part("user"), "uri.host": _uri_part("host"),
        "uri.port": _uri_part("port"), "uri.passwd": _uri_part("passwd"),
        "uri.scheme": _uri_part("scheme"), "uri.transport": _uri_part("transport"),
        "uri.params": _uri_part("params"),
        "nameaddr.uri": _nameaddr("uri"), "nameaddr.name": _nameaddr("name"),
    }
    if name in simple:
        if params:
            raise PvError(f"transformation {name} takes no parameters")
        return simple[name]
    if name == "s.substr":
        return _substr(_int_param(params, 0, name), _int_param(params, 1, name))
    if name == "s.select":
        if len(params) < 2 or len(params[1]) != 1:
            raise PvError("transformation s.select needs an index and a one-character separator")
        return _select(_int_param(params, 0, name), params[1])
    if name == "s.strip":
        n = _int_param(params, 0, name)
        return lambda v: None if v is None else str(v)[n:]
    if name == "s.striptail":
        n = _int_param(params, 0, name)
        return lambda v: None if v is None else (str(v)[:-n] if n else str(v))
    if name == "uri.param":
        if not params:
            raise PvError("transformation uri.param needs a parameter name")
        return _uri_part("param", params[0].strip().lower())
    if name == "param.value":
        if not params:
            raise PvError("transformation param.value needs a parameter name")
        sep = params[1] if len(params) > 1 and params[1] else ";"
        return _param_value(params[0].strip(), sep)
    raise PvError(f"unknown transformation {{{name}}}")
