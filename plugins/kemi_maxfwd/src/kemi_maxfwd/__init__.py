"""maxfwd.so: Max-Forwards processing (RFC 3261 16.3 step 3, 16.6 step 3)."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from kemi_core.api import CfgFunction, Core, KemiExport, MsgContext, export, hookimpl
from kemi_core.sip import SipParseError, maxfwd_processor

log = logging.getLogger("kemi.maxfwd")

MODULE = "maxfwd"
#: RFC 3261 8.1.1.6 recommends 70.
DEFAULT_MAX_LIMIT = 70


class _Settings:
    max_limit = DEFAULT_MAX_LIMIT


_settings = _Settings()


def exports() -> list[KemiExport]:
    return [
        attrs.evolve(export(MODULE, "process_maxfwd", process_maxfwd, "i"),
                     func=_process_compiled),
        export(MODULE, "is_maxfwd_lt", is_maxfwd_lt, "i"),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "max_limit", int, DEFAULT_MAX_LIMIT,
                       doc="upper bound: a larger Max-Forwards is lowered to it")
    core.add_cfg_function(CfgFunction(MODULE, "mf_process_maxfwd_header", _process_compiled, 1, 1,
                                      (0,)))
    core.add_cfg_function(CfgFunction(MODULE, "process_maxfwd", _process_compiled, 1, 1, (0,)))
    core.add_cfg_function(CfgFunction(MODULE, "is_maxfwd_lt", is_maxfwd_lt, 1, 1, (0,)))
    core.add_cfg_function(CfgFunction(MODULE, "mf_is_maxfwd_lt", is_maxfwd_lt, 1, 1, (0,)))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    limit = int(core.modparam(MODULE, "max_limit"))
    if not 0 <= limit <= 255:
        raise ValueError(f"maxfwd: max_limit {limit} is out of 0..255")
    _settings.max_limit = limit


def process_maxfwd(ctx: MsgContext, limit: int) -> int:
    """Add Max-Forwards (value ``limit``) when missing, else decrement it.

    Returns 2 when the header was added, 1 when decremented, -1 when it is already 0 (the
    script answers 483 Too Many Hops), -2 on a malformed header or bad limit.
    """
    if limit & -256:  # (not 0 <= limit <= 255, in one operation: every request comes here)
        log.error("process_maxfwd: limit %d is out of 0..255", limit)
        return -2
    msg = ctx.msg
    try:
        value = msg.max_forwards
    except SipParseError as exc:
        # no internal error is recorded: Kamailio's sl_reply_error then gives its generic 500
        log.info("process_maxfwd: bad Max-Forwards: %s", exc.reason)
        return -2
    if value is None:
        msg.set_max_forwards(min(limit, _settings.max_limit))
        return 2
    if value == 0:
        return -1
    # every request: a comparison rather than a call of min()
    value -= 1
    if value > _settings.max_limit:
        value = _settings.max_limit
    msg.set_max_forwards(value)
    return 1


#: process_maxfwd as scripts and the cfg call it: its usual case (a Max-Forwards lowered by one,
#: or 0) in one compiled call (kemi_core.sip.maxfwd_processor), the function above for the rest
_process_compiled: Any = (process_maxfwd if maxfwd_processor is None
                          else maxfwd_processor((_settings, process_maxfwd)))


def is_maxfwd_lt(ctx: MsgContext, limit: int) -> int:
    """1 when Max-Forwards is lower than ``limit``; -1 when absent, -2 when not lower, -3 bad."""
    try:
        value = ctx.msg.max_forwards
    except SipParseError:
        return -3
    if value is None:
        return -1
    return 1 if value < limit else -2
