"""kex's native kamailio.cfg functions; flag storage is the core's (KSR.setsflag & co, $du)."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext, set_pv
from kemi_core.sip import SipParseError, parse_uri

log = logging.getLogger("kemi.kex")


def _rc(ok: bool) -> int:
    return 1 if ok else -1


def _core_flag(ctx: MsgContext, name: str, *args: int) -> int:
    """Run the core's KEMI flag function ``KSR.<name>`` (flags are stored by the core)."""
    exp = ctx.core.registry.lookup("", name)
    if exp is None:
        log.error("%s: the core has no KEMI function %s", name, name)
        return -1
    return _rc(bool(exp.func(ctx, *args)))


def setsflag(ctx: MsgContext, flag: int) -> int:
    """Set script flag ``flag``."""
    return _core_flag(ctx, "setsflag", flag)


def issflagset(ctx: MsgContext, flag: int) -> int:
    """Script flag ``flag`` is set."""
    return _core_flag(ctx, "issflagset", flag)


def resetsflag(ctx: MsgContext, flag: int) -> int:
    """Clear script flag ``flag``."""
    return _core_flag(ctx, "resetsflag", flag)


def setbflag(ctx: MsgContext, flag: int, branch: int = 0) -> int:
    """Set branch flag ``flag`` on ``branch`` (0, the default, is the R-URI branch)."""
    return _core_flag(ctx, "setbiflag", flag, branch)


def isbflagset(ctx: MsgContext, flag: int, branch: int = 0) -> int:
    """Branch flag ``flag`` is set on ``branch``."""
    return _core_flag(ctx, "isbiflagset", flag, branch)


def resetbflag(ctx: MsgContext, flag: int, branch: int = 0) -> int:
    """Clear branch flag ``flag`` on ``branch``."""
    return _core_flag(ctx, "resetbiflag", flag, branch)


def setdsturi(ctx: MsgContext, uri: str) -> int:
    """Set the destination URI ($du), checked to be a valid URI."""
    try:
        parse_uri(uri)
    except SipParseError:
        log.error("setdsturi: invalid URI %r", uri)
        return -1
    ctx.dst_uri = uri
    return 1


def resetdsturi(ctx: MsgContext) -> int:
    """Clear the destination URI ($du)."""
    ctx.dst_uri = None
    return 1


def isdsturiset(ctx: MsgContext) -> int:
    """A destination URI ($du) is set."""
    return _rc(bool(ctx.dst_uri))


def pv_printf(ctx: MsgContext, var: str, fmt: str) -> int:
    """Evaluate the format ``fmt`` and assign the text to variable ``var``."""
    try:
        value = ctx.core.pv.format(fmt)(ctx)
        set_pv(ctx, var, value)
    except ValueError as exc:
        log.error("pv_printf(%r, %r): %s", var, fmt, exc)
        return -1
    return 1


def is_myself(ctx: MsgContext, uri: str) -> int:
    """``uri`` (variables evaluated) names this server, as KSR.is_myself decides: a ``sip:``
    URI (a missing port matches any of ours, a ``;transport=`` must be ours), or a bare host
    with any port."""
    text = uri
    if "$" in text:
        try:
            text = ctx.core.pv.format(text)(ctx)
        except ValueError:
            pass
    return _rc(ctx.core.myself.uri_or_host(text))


