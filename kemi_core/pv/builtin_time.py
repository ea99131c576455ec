"""Time pseudo-variables of Kamailio's pv module: $time(name), $utime(name), $timef(format),
$utimef(format) and $TV(name). ($Ts, $TS, $Tf, $TF and $Tb live in builtin_net.)

The time is the core's wall clock (``core.clock.wall()``, so a test's virtual clock drives them
too); ``$time``/``$utime`` and ``$TV(s)``/``$TV(u)`` keep the time of their first reading for the
whole message, as Kamailio does; ``$timef``, ``$utimef`` and ``$TV(sn|un|Sn)`` read it anew.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kemi_core.pv.registry import PvError, PvValue, register_builtin

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

#: $time / $utime names -> the value from a struct_time (Kamailio's numbering: months 1-12,
#: week days 1-7 from Sunday, year days 1-366).
_FIELDS = {
    "sec": lambda t: t.tm_sec, "min": lambda t: t.tm_min, "hour": lambda t: t.tm_hour,
    "mday": lambda t: t.tm_mday, "mon": lambda t: t.tm_mon, "year": lambda t: t.tm_year,
    "wday": lambda t: (t.tm_wday + 1) % 7 + 1, "yday": lambda t: t.tm_yday,
    "isdst": lambda t: t.tm_isdst,
}
_TV_NAMES = ("s", "u", "sn", "un", "Sn")


def _msg_time(ctx: MsgContext) -> float:
    """The message's time: read once, then the same for every later reading."""
    t = ctx.extra.get("pv_msg_time")
    if t is None:
        t = ctx.extra["pv_msg_time"] = ctx.core.clock.wall()
    return float(t)


def _field_name(arg: str) -> str:
    name = arg.strip()
    if name not in _FIELDS:
        raise PvError(f"unknown time field {arg!r} (known: {', '.join(_FIELDS)})")
    return name


def _tv_name(arg: str) -> str:
    name = arg.strip()
    if name not in _TV_NAMES:
        raise PvError(f"$TV({arg}): unknown name (known: {', '.join(_TV_NAMES)})")
    return name


def _format(arg: str) -> str:
    if not arg:
        raise PvError("a time format is needed, e.g. $timef(%Y-%m-%d)")
    return arg


def _local_field(ctx: MsgContext, name: str) -> PvValue:
    return int(_FIELDS[name](time.localtime(_msg_time(ctx))))


def _utc_field(ctx: MsgContext, name: str) -> PvValue:
    return int(_FIELDS[name](time.gmtime(_msg_time(ctx))))


def _tv(ctx: MsgContext, name: str) -> PvValue:
    now = _msg_time(ctx) if name in ("s", "u") else ctx.core.clock.wall()
    sec, usec = int(now), int((now - int(now)) * 1_000_000)
    if name in ("s", "sn"):
        return sec
    if name in ("u", "un"):
        return usec
    return f"{sec}.{usec:06d}"


def _register() -> None:
    reg = register_builtin
    reg("time", _local_field, takes_arg=True, parse_arg=_field_name,
        doc="a field of the message's local time: sec, min, hour, mday, mon, year, wday, yday, isdst")
    reg("utime", _utc_field, takes_arg=True, parse_arg=_field_name,
        doc="a field of the message's UTC time (names as $time)")
    reg("timef", lambda c, f: time.strftime(f, time.localtime(c.core.clock.wall())),
        takes_arg=True, parse_arg=_format, doc="the local time now, strftime format")
    reg("utimef", lambda c, f: time.strftime(f, time.gmtime(c.core.clock.wall())),
        takes_arg=True, parse_arg=_format, doc="the UTC time now, strftime format")
    reg("TV", _tv, takes_arg=True, parse_arg=_tv_name,
        doc="s/u: seconds/microseconds of the message's time; sn/un: of now; Sn: now as sec.usec")


_register()
