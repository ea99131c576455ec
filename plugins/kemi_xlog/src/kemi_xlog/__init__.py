"""kemi module ``xlog``: log lines with pseudo-variables, ``KSR.xlog.xinfo("from $si\\n")``.

``loadmodule "xlog.so"``; parameters as in Kamailio (buf_size, force_color, long_format, prefix,
prefix_mode, log_facility, log_colors, methods_filter). Lines go to the ``kemi.script`` logger.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kemi_core.api import (
    ALERT,
    BUG,
    NOTICE,
    CfgFunction,
    KemiExport,
    ModuleError,
    export,
    hookimpl,
)
from kemi_xlog.levels import parse_level
from kemi_xlog.writer import method_filtered, settings, write

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

MODULE = "xlog"


def _exports() -> list[KemiExport]:
    return [
        export(MODULE, "xlog", xlog, "ss"),
        export(MODULE, "xdbg", xdbg, "s"),
        export(MODULE, "xinfo", xinfo, "s"),
        export(MODULE, "xnotice", xnotice, "s"),
        export(MODULE, "xwarn", xwarn, "s"),
        export(MODULE, "xerr", xerr, "s"),
        export(MODULE, "xcrit", xcrit, "s"),
        export(MODULE, "xalert", xalert, "s"),
    ]


# ---- KEMI functions --------------------------------------------------------------------------
def xlog(ctx: MsgContext, slevel: str, lmsg: str) -> int:
    """Log ``lmsg`` (with $pv replaced) at ``slevel`` ("L_ERR", "L_INFO", ... or a $pv)."""
    try:
        level = parse_level(slevel)(ctx)
    except ValueError as exc:
        logging.getLogger("kemi.script").error("xlog: %s", exc)
        level = logging.ERROR
    return write(ctx, level, lmsg)


def xdbg(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_DBG."""
    return write(ctx, logging.DEBUG, lmsg)


def xinfo(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_INFO."""
    return write(ctx, logging.INFO, lmsg)


def xnotice(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_NOTICE."""
    return write(ctx, NOTICE, lmsg)


def xwarn(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_WARN."""
    return write(ctx, logging.WARNING, lmsg)


def xerr(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_ERR."""
    return write(ctx, logging.ERROR, lmsg)


def xbug(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_BUG."""
    return write(ctx, BUG, lmsg)


def xcrit(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_CRIT."""
    return write(ctx, logging.CRITICAL, lmsg)


def xalert(ctx: MsgContext, lmsg: str) -> int:
    """xlog at L_ALERT."""
    return write(ctx, ALERT, lmsg)


# ---- native kamailio.cfg functions -----------------------------------------------------------
def _line_prefix(ctx: MsgContext) -> str:
    """xlogl/xdbgl: the config line (and file with long_format), when the engine told us."""
    line = ctx.extra.get("cfg_line")
    if line is None:
        return ""
    if settings.long_format and ctx.extra.get("cfg_file"):
        return f"{ctx.extra['cfg_file']}:{line}: "
    return f"{line}: "


def cfg_xlog(ctx: MsgContext, *args: str) -> int:
    """xlog([[facility,] level,] format): the facility is accepted and not used."""
    level = parse_level(args[-2])(ctx) if len(args) >= 2 else logging.ERROR
    return write(ctx, level, args[-1])


def cfg_xlogl(ctx: MsgContext, *args: str) -> int:
    level = parse_level(args[-2])(ctx) if len(args) >= 2 else logging.ERROR
    return write(ctx, level, args[-1], _line_prefix(ctx))


def cfg_xdbgl(ctx: MsgContext, fmt: str) -> int:
    return write(ctx, logging.DEBUG, fmt, _line_prefix(ctx))


def cfg_xlogm(ctx: MsgContext, level: str, fmt: str) -> int:
    if method_filtered(ctx):
        return 1
    return write(ctx, parse_level(level)(ctx), fmt)


def _cfg_functions() -> list[CfgFunction]:
    one = [("xdbg", xdbg), ("xinfo", xinfo), ("xnotice", xnotice), ("xwarn", xwarn),
           ("xerr", xerr), ("xbug", xbug), ("xcrit", xcrit), ("xalert", xalert),
           ("xdbgl", cfg_xdbgl)]
    fns = [CfgFunction(MODULE, name, fn, 1, 1) for name, fn in one]
    fns += [CfgFunction(MODULE, "xlog", cfg_xlog, 1, 3),
            CfgFunction(MODULE, "xlogl", cfg_xlogl, 1, 3),
            CfgFunction(MODULE, "xlogm", cfg_xlogm, 2, 2)]
    return fns


# ---- hooks -----------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    dp = core.declare_param
    dp(MODULE, "buf_size", int, 4096, doc="maximum size of a log message")
    dp(MODULE, "force_color", int, 0, doc="accepted; colours are the log handler's business")
    dp(MODULE, "long_format", int, 0, doc="xlogl/xdbgl print the config file name too")
    dp(MODULE, "prefix", str, "<script>: ", doc="text written before each message")
    dp(MODULE, "prefix_mode", int, 0, doc="1: prefix is a format with pseudo-variables")
    dp(MODULE, "log_facility", str, None, doc="accepted; syslog facility for xlog lines")
    dp(MODULE, "log_colors", str, None, multi=True, doc="accepted; L_ERR=cr style colours")
    dp(MODULE, "methods_filter", int, -1, doc="method-id bitmask xlogm() skips")
    for fn in _cfg_functions():
        core.add_cfg_function(fn)


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return _exports()


@hookimpl
def mod_init(core: Core) -> None:
    buf_size = int(core.modparam(MODULE, "buf_size"))
    if buf_size <= 0:
        raise ModuleError(f"xlog: buf_size must be positive, not {buf_size}")
    settings.buf_size = buf_size
    settings.long_format = int(core.modparam(MODULE, "long_format"))
    settings.methods_filter = int(core.modparam(MODULE, "methods_filter"))
    settings.prefix = str(core.modparam(MODULE, "prefix") or "")
    settings.prefix_mode = int(core.modparam(MODULE, "prefix_mode"))
    settings.prefix_fn = None
    if settings.prefix_mode == 1:
        try:
            settings.prefix_fn = core.pv.compile_format(settings.prefix)
        except ValueError as exc:
            raise ModuleError(f"xlog: prefix {settings.prefix!r}: {exc}")
