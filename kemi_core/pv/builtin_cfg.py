"""Pseudo-variables that read the configuration.

``$sel(cfg_get.group.name)``: a custom setting of kamailio.cfg (``group.name = value desc ...``),
as Kamailio's select framework gives it, always as text. With cfg_rpc loaded the value is the
current one (cfg.sets / cfg.seti change it at run time); without, the one kamailio.cfg sets.
Kamailio's other selects are not provided: such a spec is refused when the config is loaded.

``$def(NAME)``: a ``#!define`` as written (quotes kept), $null when not defined; ``$defn(NAME)``
the same as a number when it is one (not defined: 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_core.pv.registry import PvError, PvValue, register_builtin

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_PREFIX = "cfg_get."


def _parse(arg: str) -> tuple[str, str]:
    text = arg.strip()
    group, _, name = text[len(_PREFIX):].partition(".")
    if not text.startswith(_PREFIX) or not group or not name:
        raise PvError(f"$sel({arg}): kemi provides only $sel(cfg_get.group.name)")
    return group, name


def _get(ctx: MsgContext, key: tuple[str, str]) -> PvValue:
    group, name = key
    live: Any = ctx.core.services.get("cfg")
    if live is not None:
        try:
            value = live.get(group, name)
        except Exception:  # cfg_rpc answers an unknown variable with an RPC fault
            value = None
    elif group == "core" and name == "debug":
        value = ctx.core.config.debug
    else:
        value = ctx.core.config.extra.get(f"{group}.{name}")
    return None if value is None else str(value)


def _define(ctx: MsgContext, name: str) -> PvValue:
    return ctx.core.config.defines.get(name)


def _define_number(ctx: MsgContext, name: str) -> PvValue:
    value = ctx.core.config.defines.get(name)
    if value is None:
        return 0
    try:
        return int(value.strip())
    except ValueError:
        return value


register_builtin("sel", _get, takes_arg=True, parse_arg=_parse,
                 doc="$sel(cfg_get.group.name): a custom kamailio.cfg setting, as text")
register_builtin("def", _define, takes_arg=True, parse_arg=str.strip,
                 doc="the value of a #!define as written, $null when not defined")
register_builtin("defn", _define_number, takes_arg=True, parse_arg=str.strip,
                 doc="the value of a #!define as a number when it is one (not defined: 0)")
